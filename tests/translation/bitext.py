"""A tiny German–English and Czech–English bitext written for the tests."""

from sosjax.data.translation import TranslationTask

NOUNS = [("der Hund", "pes", "the dog"), ("die Katze", "kočka", "the cat"), ("das Haus", "dům", "the house"),
         ("der Baum", "strom", "the tree"), ("das Auto", "auto", "the car")]
ADJECTIVES = [("groß", "velký", "big"), ("klein", "malý", "small"), ("alt", "starý", "old"),
              ("neu", "nový", "new")]


def sentence_pairs(language: str) -> list[tuple[str, str]]:
    """20 pairs `X is Y.` in German (`"de"`) or Czech (`"cs"`) with English."""
    pairs = []
    for de_noun, cs_noun, en_noun in NOUNS:
        for de_adj, cs_adj, en_adj in ADJECTIVES:
            source = f"{de_noun.capitalize()} ist {de_adj}." if language == "de" else f"{cs_noun.capitalize()} je {cs_adj}."
            pairs.append((source, f"{en_noun.capitalize()} is {en_adj}."))
    return pairs


def tiny_tasks() -> tuple[TranslationTask, TranslationTask]:
    tasks = []
    for language in ("de", "cs"):
        pairs = tuple(sentence_pairs(language))
        tasks.append(TranslationTask(f"{language}-en", language, "en", pairs, pairs[:4], pairs[:4]))
    return tuple(tasks)
