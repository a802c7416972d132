"""experiments: see DESIGN.md."""
