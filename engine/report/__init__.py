"""`tlbench report`: one self-contained HTML file that shows a run (or compares several) to someone who is not
in the terminal. Reads what the runs wrote (engine.report.sources), turns it into the numbers and pictures of
each section (sections, charts, pictures, compare) and renders them with Jinja2 (render, templates/).
"""
