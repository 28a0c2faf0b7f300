"""The embedded text datasets, as tensorflow-datasets builders: generated sentences in
which the order of the words decides the answer.

- `sentiment`: reviews of one or two clauses; negation flips a clause ("was not bad")
  unless it is the "not only ... but" construction, and the connective decides which
  clause counts ("A but B" and "although A, B" mean B, "A, although B" means A). The
  same words in another order have the other label, so a bag of words cannot solve it.
- `sentiment/long_range`: "i loved it" or "i hated it", then 5 to 100 words of
  narration, then what someone else thought, in the same words: the label is the
  speaker's opinion, read at the start (the notes' long-range dependency). The short
  ones let a model find the signal; the long ones need a memory of up to 100 steps.
- `entities`: sentences about people, places and companies whose names are all
  ambiguous ("jordan", "austin", "victoria"); what a name is shows only in the words
  after it ("jordan said", "jordan is a city", "jordan corp"), so a tagger must read to
  the right. Tags in BIO form: `B-PER`, `I-PER`, `B-LOC`, `I-LOC`, `B-ORG`, `I-ORG`, `O`.

A sentence belongs to the split that a hash of its text picks, so the validation and
test sentences never occur in training. Prepared once into the tfds data directory and
read like any tfds dataset afterwards.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import tensorflow_datasets as tfds

SPLITS = ("train", "validation", "test")
SENTIMENTS = ("negative", "positive")
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


def split_of(text: str) -> str:
    """The split a sentence belongs to: 80% train, 10% validation, 10% test, by hash."""
    bucket = zlib.crc32(text.encode()) % 10
    return "test" if bucket == 9 else "validation" if bucket == 8 else "train"


@dataclasses.dataclass
class SentenceConfig(tfds.core.BuilderConfig):
    num_train: int = 12000
    num_validation: int = 1500
    num_test: int = 1500
    seed: int = 1234


class SentenceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the embedded text datasets: one stream of sentences, split by hash.

    Subclasses set `_example(rng) -> (text, example dict)`.
    """

    def _example(self, rng: np.random.Generator) -> tuple[str, dict]:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        rng = np.random.default_rng(config.seed)
        wanted, seen = getattr(config, f"num_{split}"), set()
        while len(seen) < wanted:
            text, example = self._example(rng)
            if split_of(text) == split and text not in seen:
                seen.add(text)
                yield len(seen) - 1, example


# Sentiment -----------------------------------------------------------------------------

SUBJECTS = (
    "the film", "the plot", "the acting", "the ending", "the music", "the script",
    "the cast", "the story", "the dialogue", "the pacing", "the camera work", "the humour",
)  # fmt: skip
ADJECTIVES = {
    "positive": (
        "good", "great", "excellent", "brilliant", "moving", "funny", "clever", "charming",
        "gripping", "beautiful", "fresh", "lovely",
    ),
    "negative": (
        "bad", "awful", "boring", "dull", "weak", "clumsy", "tedious", "bland", "messy",
        "forgettable", "silly", "flat",
    ),
}  # fmt: skip
OPENERS = ("", "", "", "honestly ,", "i think", "overall ,", "to be fair ,", "in short ,")
NARRATION = (
    "the", "a", "we", "they", "went", "to", "cinema", "on", "saturday", "with", "friends",
    "and", "bought", "popcorn", "tickets", "sat", "near", "front", "row", "while", "it",
    "rained", "outside", "then", "walked", "home", "after", "late", "show", "talking",
    "about", "city", "trains", "dinner", "weather", "long", "queue", "car", "park",
)  # fmt: skip


def _clause(rng, polarity: str) -> str:
    """A clause with `polarity`: plain, negated (flips) or "not only ... but" (keeps)."""
    subject = SUBJECTS[rng.integers(len(SUBJECTS))]
    verb = ("was", "is")[rng.integers(2)]
    form = rng.integers(5)
    other = "negative" if polarity == "positive" else "positive"
    if form <= 1:
        return f"{subject} {verb} {_adjective(rng, polarity)}"
    if form == 2:
        return f"{subject} {verb} not {_adjective(rng, other)}"
    if form == 3:
        negation = ("never once", "never", "hardly")[rng.integers(3)]
        return f"{subject} {verb} {negation} {_adjective(rng, other)}"
    first, second = _adjective(rng, polarity), _adjective(rng, polarity)
    return f"{subject} {verb} not only {first} but {second}"


def _adjective(rng, polarity: str) -> str:
    words = ADJECTIVES[polarity]
    adjective = words[rng.integers(len(words))]
    return f"really {adjective}" if rng.random() < 0.15 else adjective


def sentiment_review(rng) -> tuple[str, str]:
    """A review and its label. Most reviews hold two clauses of opposite polarity, so
    only their order (through the connective) tells the label."""
    label = SENTIMENTS[rng.integers(2)]
    other = "negative" if label == "positive" else "positive"
    kind = rng.integers(10)
    if kind < 2:
        body = _clause(rng, label)
    elif kind < 5:
        body = f"{_clause(rng, other)} but {_clause(rng, label)}"
    elif kind < 7:
        body = f"although {_clause(rng, other)} , {_clause(rng, label)}"
    elif kind < 9:
        body = f"{_clause(rng, label)} , although {_clause(rng, other)}"
    else:
        body = f"{_clause(rng, label)} and {_clause(rng, label)}"
    opener = OPENERS[rng.integers(len(OPENERS))]
    return f"{opener} {body}".strip(), label


def long_range_review(rng) -> tuple[str, str]:
    """The speaker's opinion first, a long narration, then someone else's opinion."""
    label = SENTIMENTS[rng.integers(2)]
    other = SENTIMENTS[rng.integers(2)]
    verbs = {"positive": "loved", "negative": "hated"}
    narration = " ".join(rng.choice(NARRATION, size=rng.integers(5, 101)))
    who = ("my friend", "my sister", "the critic", "my neighbour")[rng.integers(4)]
    text = f"i {verbs[label]} it . {narration} . {who} {verbs[other]} it"
    return text, label


@dataclasses.dataclass
class SentimentConfig(SentenceConfig):
    long_range: bool = False


class Sentiment(SentenceBuilder, skip_registration=True):
    """Generated reviews whose sentiment depends on word order."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "long_range: 5 to 100 words apart (was 25 to 60, which no model learned).",
    }
    BUILDER_CONFIGS = [
        SentimentConfig(name="default", description="Negation, its scope and connectives."),
        SentimentConfig(
            name="small",
            description="3,000 training reviews: for tests and quick tries.",
            num_train=3000,
            num_validation=400,
            num_test=400,
        ),
        SentimentConfig(
            name="long_range",
            description="The label is the first of two opinions, 5-100 words apart.",
            long_range=True,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=SENTIMENTS)}
            ),
            supervised_keys=("text", "label"),
        )

    def _example(self, rng):
        review = long_range_review if self.builder_config.long_range else sentiment_review
        text, label = review(rng)
        return text, {"text": text, "label": label}


# Entities ------------------------------------------------------------------------------

NAMES = (
    "jordan", "austin", "victoria", "chelsea", "florence", "lincoln", "morgan", "sydney",
    "phoenix", "dallas", "madison", "savannah", "orlando", "paris", "denver", "hudson",
)  # fmt: skip
# What follows a name decides its type; ORG cues start with the name's own suffix.
CUES = {
    "PER": ("said hello", "smiled", "wrote a letter", "was born there", "sings well",
            "laughed", "cooked dinner"),
    "LOC": ("is a city", "lies to the north", "has many rivers", "was flooded",
            "is sunny", "has old streets"),
    "ORG": ("corp hired staff", "inc made profits", "group opened offices", "corp was sold",
            "inc hired staff", "group made profits"),
}  # fmt: skip
PREFIXES = ("", "", "yesterday", "we heard that", "last year", "they say", "today")
JOINERS = ("and", "while", "but", ", and")


def _entity_clause(rng) -> tuple[list[str], list[str]]:
    kind = ("PER", "LOC", "ORG")[rng.integers(3)]
    names = list(rng.choice(NAMES, size=rng.integers(1, 3), replace=False))
    cue = CUES[kind][rng.integers(len(CUES[kind]))].split()
    tags = [f"B-{kind}"] + [f"I-{kind}"] * (len(names) - 1)
    if kind == "ORG":  # "jordan corp": the suffix belongs to the name.
        names, cue = [*names, cue[0]], cue[1:]
        tags.append("I-ORG")
    return names + cue, tags + ["O"] * len(cue)


def entity_sentence(rng) -> tuple[list[str], list[str]]:
    """Tokens and their BIO tags: one or two clauses about named things."""
    prefix = PREFIXES[rng.integers(len(PREFIXES))].split()
    tokens, tags = list(prefix), ["O"] * len(prefix)
    for index in range(rng.integers(1, 3)):
        if index:
            joiner = JOINERS[rng.integers(len(JOINERS))].split()
            tokens, tags = tokens + joiner, tags + ["O"] * len(joiner)
        clause_tokens, clause_tags = _entity_clause(rng)
        tokens, tags = tokens + clause_tokens, tags + clause_tags
    return tokens, tags


class Entities(SentenceBuilder, skip_registration=True):
    """Generated sentences with ambiguous names, tagged in BIO form."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SentenceConfig(name="default", description="Names typed by the words after them."),
        SentenceConfig(
            name="small",
            description="3,000 training sentences: for tests and quick tries.",
            num_train=3000,
            num_validation=400,
            num_test=400,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(
                {
                    "tokens": tfds.features.Sequence(tfds.features.Text()),
                    "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=TAGS)),
                }
            ),
        )

    def _example(self, rng):
        tokens, tags = entity_sentence(rng)
        return " ".join(tokens), {"tokens": tokens, "tags": tags}
