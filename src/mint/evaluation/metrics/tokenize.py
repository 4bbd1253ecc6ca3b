"""PTB tokenisation as pycocoevalcap does it before scoring captions.

The reference runs Stanford's PTBTokenizer (CoreNLP 3.4.1, the jar pycocoevalcap ships) with
`-preserveLines -lowerCase`, one caption per line, then drops punctuation tokens. We run the same
jar once for any number of captions, feeding them on stdin, so that scores match the toolkit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mint.errors import DataError, MintError
from mint.evaluation.metrics.java import PTB_TOKENIZER_JAR, java_executable, pycocoevalcap_jar, run_java

# The reference's list, compared after lowercasing: bracket tokens therefore come out as "-lrb-"
# and are kept. That is the toolkit's behaviour, and parity with it is the point.
PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# Every character the tokenizer treats as a line end; one inside a caption would split it in two
# and shift every later caption onto the wrong line.
_LINE_BREAKS = re.compile("[\n\r\u000b\u000c\u2028\u2029]")


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Tokenise each text; returns lowercased tokens joined by single spaces, punctuation removed."""
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"ptb_tokenize: texts[{index}] must be a string, got {type(text).__name__}")
    if not texts:
        return []
    command = [
        java_executable(),
        "-cp",
        str(pycocoevalcap_jar(PTB_TOKENIZER_JAR)),
        "edu.stanford.nlp.process.PTBTokenizer",
        "-preserveLines",
        "-lowerCase",
        "-encoding",
        "UTF-8",
    ]
    payload = "".join(_LINE_BREAKS.sub(" ", text) + "\n" for text in texts).encode("utf-8")
    lines = run_java("PTB tokenisation", command, payload).decode("utf-8").split("\n")
    if len(lines) < len(texts) or any(line.strip() for line in lines[len(texts) :]):
        raise MintError(
            f"PTB tokenisation: expected {len(texts)} output lines for {len(texts)} texts, "
            f"got {len(lines)} (the tokenizer's output is out of step with its input)"
        )
    # Split on the space character only, as the reference does: the tokenizer joins the parts of
    # some tokens (fractions, phone numbers) with U+00A0, which must stay inside the token here.
    return [
        " ".join(token for token in line.rstrip().split(" ") if token not in PUNCTUATION)
        for line in lines[: len(texts)]
    ]
