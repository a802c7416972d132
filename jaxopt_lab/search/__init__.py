"""search: see DESIGN.md."""
