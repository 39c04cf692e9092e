"""The rasd command line: the composition root that wires settings, adapters and stages."""
