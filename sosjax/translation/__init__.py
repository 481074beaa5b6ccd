"""Translation with M2M100: tokenizers, losses, BLEU and the small offline JAT."""
