"""health: see DESIGN.md."""
