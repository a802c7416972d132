"""data: see DESIGN.md."""
