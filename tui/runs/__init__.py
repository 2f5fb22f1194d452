"""The Runs screen: past runs, one opened with its config, curves and report."""
