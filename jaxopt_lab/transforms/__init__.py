"""transforms: see DESIGN.md."""
