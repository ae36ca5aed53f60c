"""Is every word a page shows in the language's message catalog? (shared by the browser tests)

The pages mark values — VM and user names, numbers, sizes, dates, paths, the server's own English
messages — as `.val` elements (or <code>/<pre>); everything else a reader sees is a word of the page and
must be a catalog message of the page's language. A message with {placeholders} is matched as a pattern
(the text between them may be a value), and a text node that is one piece of a message split at its
placeholders (the words around a .val span) counts too. Text with no letters at all ("·", "12:30", "→")
is not a word.
"""

from __future__ import annotations

import functools
import re

from playwright.sync_api import Page

from vmdeck.api import i18n

__all__ = ["visible_words", "strays", "words_not_in_catalog"]

# Punctuation a page puts around a message ("(manager)", " · ", "label: "): not part of the words.
_EDGES = " \t\n()[]{}:;,.·–—-…/?!'\""
_LETTER = re.compile(r"[^\W\d_]")
_PLACEHOLDER = re.compile(r"\{\w+\}")

# Every visible text node under `root` that is not inside a value, the placeholder of each visible field,
# and the options of each visible <select> that are not values. Hidden things (a closed tab, a `hidden`
# notice) are not shown, so not checked; notices (#toast) and the activity panel come and go with the
# server's words in them and are left out, as are the guest's own screen and serial terminal.
_VISIBLE_WORDS_JS = """(root) => {
  const skip = '.val, code, pre, kbd, samp, script, style, noscript, #toast, #activity, .swagger-ui, .xterm, #screen';
  const shown = (element) => element.checkVisibility({ checkVisibilityCSS: true, checkOpacity: false });
  const out = [];
  const top = document.querySelector(root) || document.body;
  const walker = document.createTreeWalker(top, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || parent.closest('select, option, datalist, textarea')) continue;
    if (!shown(parent)) continue;
    const text = node.textContent.replace(/\\s+/g, ' ').trim();
    if (text) out.push(text);
  }
  for (const field of top.querySelectorAll('input[placeholder], textarea[placeholder]')) {
    if (field.closest(skip) || !shown(field)) continue;
    if (field.placeholder.trim()) out.push(field.placeholder.trim());
  }
  for (const select of top.querySelectorAll('select')) {
    if (select.closest(skip) || !shown(select)) continue;
    for (const option of select.options) {
      if (option.classList.contains('val')) continue;
      const text = option.textContent.replace(/\\s+/g, ' ').trim();
      if (text) out.push(text);
    }
  }
  return out;
}"""


def visible_words(page: Page, root: str = "body") -> list[str]:
    """The words a reader sees on the page now (values left out), one string per text node."""
    words: list[str] = page.evaluate(_VISIBLE_WORDS_JS, root)
    return words


def _trim(text: str) -> str:
    return text.strip(_EDGES)


@functools.cache
def _matchers(lang: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """The catalog as exact texts (whole messages and the pieces between placeholders) and patterns."""
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for message in i18n.catalog(lang).values():
        exact.add(_trim(message))
        pieces = _PLACEHOLDER.split(message)
        exact.update(_trim(piece) for piece in pieces if _trim(piece))
        # A message of placeholders and punctuation only ("{vm}: {result}") would match any text: it is
        # no pattern (its values are shown as values).
        if len(pieces) > 1 and any(_LETTER.search(piece) for piece in pieces):
            patterns.append(re.compile(".+?".join(re.escape(piece) for piece in pieces), re.S))
    return frozenset(exact), tuple(patterns)


def strays(texts: list[str], lang: str) -> list[str]:
    """The texts that are words (they have letters) and no message of `lang`'s catalog accounts for."""
    exact, patterns = _matchers(lang)
    found: list[str] = []
    for text in texts:
        if not _LETTER.search(text) or _trim(text) in exact:
            continue
        if any(pattern.fullmatch(text) or pattern.fullmatch(_trim(text)) for pattern in patterns):
            continue
        found.append(text)
    return found


def words_not_in_catalog(page: Page, lang: str, root: str = "body") -> list[str]:
    """The visible words of the page that are not in `lang`'s catalog ([] when the page is all translated)."""
    return strays(visible_words(page, root), lang)
