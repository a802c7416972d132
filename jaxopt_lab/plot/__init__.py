"""plot: see DESIGN.md."""
