"""The Train screen: start, pause, stop; progress, live log and curves; the final summary."""
