"""sosjax: evolve a Set of Sets of compact specialists from one generalist network."""

__version__ = "0.1.0"
