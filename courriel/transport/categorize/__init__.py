"""The categorizer: envelope recipients → resolved recipients, groups expanded, split per next hop."""
