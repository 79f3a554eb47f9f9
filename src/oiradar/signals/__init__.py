"""The pure signal core: arrays in, arrays out. Imports nothing from venues, store or services."""
