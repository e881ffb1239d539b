"""The built-in world: a forced shallow-water simulation written as a reanalysis store."""
