"""Domain services: the rules of the product, free of any web framework."""
