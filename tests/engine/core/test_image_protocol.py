"""Which picture protocol the environment names, and doctor saying it and why."""

from __future__ import annotations

import pytest

from engine.cli.commands.doctor import images_report
from engine.core.errors import ConfigError
from engine.core.image_protocol import PROTOCOLS, detect


@pytest.mark.parametrize("env, protocol, certain", [
    ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1"}, "kitty", True),
    ({"TERM": "xterm-ghostty", "TERM_PROGRAM": "ghostty"}, "kitty", True),
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "sixel", True),
    ({"TERM": "foot"}, "sixel", True),
    ({"TERM": "xterm-256color", "KONSOLE_VERSION": "230804"}, "sixel", True),
    # tmux hides the terminal: half blocks unless passthrough is set up and the protocol forced
    ({"TERM": "tmux-256color", "TMUX": "/tmp/tmux-0/default,1,0", "KITTY_WINDOW_ID": "1"}, "halfblock", True),
    # plain xterm may or may not draw Sixel (-ti vt340): the workbench asks the terminal
    ({"TERM": "xterm"}, "halfblock", False),
    ({}, "halfblock", False),
])
def test_the_environment_names_the_protocol(env, protocol, certain):
    found = detect(env)
    assert (found.protocol, found.certain) == (protocol, certain)
    assert found.reason


@pytest.mark.parametrize("value", PROTOCOLS)
def test_tlbench_images_forces_any_protocol_over_the_terminal(value):
    found = detect({"TLBENCH_IMAGES": value.upper(), "KITTY_WINDOW_ID": "1", "TMUX": "x"})
    assert found.protocol == value and "forced by TLBENCH_IMAGES" in found.reason


def test_a_wrong_value_names_itself_and_the_choices():
    with pytest.raises(ConfigError) as err:
        detect({"TLBENCH_IMAGES": "iterm2"})
    assert "'iterm2'" in str(err.value) and "kitty, sixel, halfblock" in str(err.value)


def test_doctor_says_what_was_detected_and_why(monkeypatch):
    monkeypatch.delenv("TLBENCH_IMAGES")
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.setenv("TERM_PROGRAM", "WezTerm")
    report = images_report()
    assert report["protocol"] == "sixel" and "WezTerm" in report["reason"]
    monkeypatch.setenv("TLBENCH_IMAGES", "nope")
    report = images_report()
    assert report["protocol"] is None and "'nope'" in report["reason"]
