"""One module per dashboard tab; each offers `build(collector, config) -> components` and pure
`read_x` / `make_x` functions that the tab's handlers call (and tests call directly)."""
