"""Where a reply or a forward quotes another mail, and the subject prefixes that mark one.

Mail clients mostly do not quote with `>`: Outlook writes a separator line ("-----Original
Message-----", or a line of underscores) and a From/Sent/To/Subject block, Gmail, Apple Mail
and Thunderbird an "On … wrote:" line or a "Forwarded message" line, each in the language of
the client. Pure functions of text; every expression is linear in the text's size (possessive
quantifiers, alternatives of literals, lines looked at one by one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A line a mail client writes above what it quotes or forwards, maybe quoted itself: Outlook's
# "-----Original Message-----", Gmail's "---------- Forwarded message ---------", Thunderbird's
# "-------- Forwarded Message --------", Apple Mail's "Begin forwarded message:", localized.
_SEPARATOR_RE = re.compile(
    r"(?im)^[ \t>]*+(?:-{2,}+[ \t]*+(?:original message|forwarded message|message d'origine"
    r"|message d’origine|message transféré|message original|message réexpédié"
    r"|ursprüngliche nachricht|weitergeleitete nachricht|originalnachricht"
    r"|mensaje original|mensaje reenviado|messaggio originale|messaggio inoltrato"
    r"|mensagem original|mensagem encaminhada|oorspronkelijk bericht|doorgestuurd bericht"
    r"|originalmeddelande|vidarebefordrat meddelande|oprindelig meddelelse"
    r"|videresendt meddelelse|opprinnelig melding|videresendt melding"
    r"|wiadomość oryginalna|oryginalna wiadomość|przekazana wiadomość|alkuperäinen viesti"
    r"|välitetty viesti)[ \t]*+-{2,}+"
    r"|(?:begin forwarded message|début du message réexpédié|début du message transféré"
    r"|anfang der weitergeleiteten nachricht|inicio del mensaje reenviado"
    r"|inizio messaggio inoltrato|início da mensagem reencaminhada"
    r"|begin doorgestuurd bericht)[ \t]*+:)")
# The labels of the header block Outlook writes above what it quotes, in its languages: the
# block starts with the sender's line and names the date and the subject within a few lines.
_FROM_LINE_RE = re.compile(
    r"(?im)^[ \t>]*+\**+[ \t]*+(?:from|de|von|van|da|od|fra|från|lähettäjä|afzender)"
    r"[ \t]*+\**+[ \t]*+:")
_SENT_LABEL_RE = re.compile(
    r"(?im)^[ \t>]*+\**+[ \t]*+(?:sent|date|envoyé|gesendet|datum|enviado|fecha|inviato|data"
    r"|wysłano|verzonden|sendt|skickat|lähetetty|verzonden op)[ \t]*+\**+[ \t]*+:")
_TO_LABEL_RE = re.compile(
    r"(?im)^[ \t>]*+\**+[ \t]*+(?:to|à|a|an|aan|para|per|til|till|do|vastaanottaja|cc)"
    r"[ \t]*+\**+[ \t]*+:")
_SUBJECT_LABEL_RE = re.compile(
    r"(?im)^[ \t>]*+\**+[ \t]*+(?:subject|objet|betreff|asunto|oggetto|assunto|onderwerp|temat"
    r"|emne|ämne|aihe)[ \t]*+\**+[ \t]*+:")
# (These label patterns are matched only where a line starts; their "^" says so, and keeps a
# search over a long run of spaces from starting at each of its characters.)
_BLOCK_LINES = 8  # how far below the sender's line the date and subject lines may stand
# The word of an attribution line ("On … wrote:", "Le … a écrit :", "Am … schrieb …:").
_WROTE_RE = re.compile(
    r"(?i)(?<!\w)(?:wrote|a[ \t]*+\n?[ \t]*+écrit|schrieb|escribió|ha scritto|scrisse|schreef|skrev"
    r"|napisał|kirjoitti|escreveu)(?!\w)")
# How such a line starts, on its own line or the line before when a client wraps it.
_OPENER_RE = re.compile(
    r"(?im)^[ \t>]*+(?:on|le|am|el|il|op|den|em|w dniu|dne)(?!\w)")
# The end of a line that ends with a colon, where an attribution line ends.
_COLON_END_RE = re.compile(r"(?m)[:：][ \t]*+$")
_ATTRIBUTION_CHARS = 600  # an attribution line is a date and a name, never a paragraph

# The subject prefix of a reply or a forward, after any [tags] a gateway adds ("[EXTERNAL]"),
# localized, and counted as some clients count them (Re[2]:, RE^2:, Re(2):).
_PREFIX_RE = re.compile(
    r"(?i)\A[ \t]*+(?:\[[^\[\]\n]{0,64}+\][ \t]*+)*+"
    r"(re|fwd?|aw|wg|sv|vs|vb|vl|antw|doorst|tr|rv|res|enc|r|i|rif|odp|pd|ynt|ilt)"
    r"(?:\[\d{1,4}+\]|\^\d{1,4}+|\(\d{1,4}+\))?+[ \t]*+[:：]")


@dataclass(frozen=True)
class Quote:
    """Where the quoted part of a text starts, and what marks it."""

    start: int
    kind: str


def reply_prefix(subject: str) -> str | None:
    """Return the reply or forward prefix the subject starts with ('RE', 'TR', 'AW', …, after
    any [tags]), or None when it starts with none."""
    match = _PREFIX_RE.match(subject)
    return match.group(1) if match else None


def quote_start(text: str, marks: bool = True) -> Quote | None:
    """Return where the first quoted or forwarded part of text starts: a `>` line (unless
    marks is False), a separator line, an Outlook header block, or an "On … wrote:" line; None
    when text quotes nothing."""
    found = [quote for quote in (_quote_marks(text) if marks else None, _separator(text),
                                 _header_block(text), _attribution(text)) if quote is not None]
    return min(found, key=lambda quote: quote.start) if found else None


def new_text(text: str) -> str:
    """Return what the writer of a reply wrote: text above its quoted part, stripped."""
    quote = quote_start(text)
    # Outlook's line of underscores above its header block belongs to the quote
    return (text[:quote.start] if quote else text).rstrip().rstrip("_").strip()


def _quote_marks(text: str) -> Quote | None:
    """Return the first `>` line that quotes something (not a bare `>`)."""
    at = 0 if text.startswith(">") else text.find("\n>") + 1
    while at > 0 or (at == 0 and text.startswith(">")):
        line_end = text.find("\n", at)
        if text[at:line_end if line_end >= 0 else len(text)].strip(" \t>"):
            return Quote(at, "quoted (> lines)")
        if line_end < 0:
            return None
        at = text.find("\n>", line_end) + 1
        if at == 0:
            return None
    return None


def _separator(text: str) -> Quote | None:
    # every separator has a dash or a colon: most alerts are spared the search
    found = _SEPARATOR_RE.search(text) if "--" in text or ":" in text else None
    return Quote(found.start(), "below a forwarded or original message") if found else None


def _header_block(text: str) -> Quote | None:
    for sender in _FROM_LINE_RE.finditer(text):
        labels = set()
        at = text.find("\n", sender.end())
        for _ in range(_BLOCK_LINES):
            if at < 0:
                break
            at += 1
            for name, label in (("sent", _SENT_LABEL_RE), ("to", _TO_LABEL_RE),
                                ("subject", _SUBJECT_LABEL_RE)):
                if label.match(text, at):
                    labels.add(name)
            at = text.find("\n", at)
        if len(labels) == 3:
            return Quote(sender.start(), "below a quoted message's From/Sent/To/Subject lines")
    return None


def _attribution(text: str) -> Quote | None:
    """Find an attribution line: a line ending with a colon that holds the "wrote" word and
    starts with "On" (or whose line before does, as Gmail wraps it). Only lines that end with
    a colon are searched for the word, each once, so the time stays linear."""
    for colon in _COLON_END_RE.finditer(text):
        start = text.rfind("\n", max(colon.start() - _ATTRIBUTION_CHARS, 0), colon.start()) + 1
        if not start and colon.start() > _ATTRIBUTION_CHARS:
            continue  # a line that long is a paragraph
        before = text.rfind("\n", max(start - _ATTRIBUTION_CHARS, 0), max(start - 1, 0)) + 1
        if not _WROTE_RE.search(text, before if start else start, colon.start()):
            continue
        if _OPENER_RE.match(text, start):
            return Quote(start, "below an 'On … wrote:' line")
        if start and (before or start <= _ATTRIBUTION_CHARS) and _OPENER_RE.match(text, before):
            return Quote(before, "below an 'On … wrote:' line")
    return None
