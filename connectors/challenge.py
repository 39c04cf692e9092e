"""Tells a bot-protection page from the document that was asked for.

Outlets behind a CDN's bot protection (Cloudflare, Imperva/Incapsula, DDoS-Guard,
Sucuri, DataDome, PerimeterX, AWS WAF…) answer a client that does not run
JavaScript with an interstitial page instead of the feed: a JS challenge
("Just a moment...", "Checking your browser"), a captcha, or the firewall's
block page. It comes as a 403 or a 503, and sometimes as a 200. rasd runs no
JavaScript and solves no captcha, so such a feed does not come back by itself:
the poller names it ``challenge_page`` instead of ``http_403``, ``http_503`` or
``html_not_feed``, and the operator knows to ask the outlet to let rasd's
User-Agent through.

:func:`challenge_marker` looks at the first :data:`SCAN_BYTES` of a body for
markers that only these pages carry: a challenge title, the challenge scripts
and cookies of the big vendors. A captcha widget alone is weaker evidence (a
home page may have one in its newsletter form), so it counts only on a page
with fewer than :data:`FEW_LINKS` links, which a site's real pages never are.
A Cloudflare page that merely loads Cloudflare's bot-detection script
(``/cdn-cgi/challenge-platform/scripts/jsd/``) is not a challenge.
"""

from __future__ import annotations

import html
import re
from typing import Final

__all__ = ["FEW_LINKS", "SCAN_BYTES", "challenge_marker"]

#: Markers sit in the head and the first scripts of these pages.
SCAN_BYTES: Final = 64 * 1024
#: A page with a captcha and fewer links than this is a captcha wall.
FEW_LINKS: Final = 10

_TITLE: Final = re.compile(rb"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
# Words of the titles that challenge and block pages use; matched in the
# lowercased title, whitespace collapsed and entities decoded.
_TITLE_PHRASES: Final = (
    "just a moment",  # Cloudflare's JS and managed challenge
    "attention required",  # Cloudflare's captcha and block page
    "checking your browser",
    "please wait... | cloudflare",
    "used cloudflare to restrict access",  # Cloudflare's firewall block
    "ddos-guard",
    "website firewall",  # Sucuri
    "pardon our interruption",  # Imperva (Distil) bot wall
    "access to this page has been denied",  # PerimeterX (HUMAN)
    "verify you are human",
    "verifying you are human",
    "human verification",
    "are you a robot",
    "captcha",
)
# Scripts, cookies and ids that appear only on challenge pages (lowercased).
_BODY_MARKERS: Final = (
    (b"_cf_chl_opt", "Cloudflare challenge script"),
    (b"cf-browser-verification", "Cloudflare browser check"),
    (b"cf_chl_", "Cloudflare challenge token"),
    (b"cf-chl-", "Cloudflare challenge widget"),
    (b"checking your browser before accessing", "Cloudflare browser check"),
    (b"enable javascript and cookies to continue", "JavaScript challenge"),
    (b"_incapsula_resource", "Imperva/Incapsula challenge"),
    (b"incapsula incident id", "Imperva/Incapsula block page"),
    (b"check.ddos-guard.net", "DDoS-Guard check"),
    (b"sucuri_cloudproxy_js", "Sucuri JavaScript challenge"),
    (b"captcha-delivery.com", "DataDome captcha"),
    (b"px-captcha", "PerimeterX captcha"),
    (b"awswafcookiedomainlist", "AWS WAF challenge"),
)
# The challenge itself is loaded from .../challenge-platform/.../orchestrate/...;
# Cloudflare's bot detection on ordinary pages loads .../scripts/jsd/ instead.
_CF_ORCHESTRATE: Final = re.compile(rb"/cdn-cgi/challenge-platform/[^\"'\s>]*orchestrate")
_CAPTCHA_WIDGETS: Final = (b"g-recaptcha", b"h-captcha", b"hcaptcha.com", b"cf-turnstile",
                           b"challenges.cloudflare.com/turnstile")  # fmt: skip
_LINK: Final = re.compile(rb"<a\s[^>]*href", re.IGNORECASE)


def _title(head: bytes) -> str | None:
    match = _TITLE.search(head)
    if match is None:
        return None
    text = html.unescape(match.group(1).decode("utf-8", errors="replace"))
    return " ".join(text.split())


def challenge_marker(body: bytes) -> str | None:
    """What shows that ``body`` is a bot-protection page, or None if nothing does."""
    head = body[:SCAN_BYTES]
    title = _title(head)
    if title:
        lowered = title.lower()
        if any(phrase in lowered for phrase in _TITLE_PHRASES):
            return f"title {title[:80]!r}"
    lowered_head = head.lower()
    for marker, what in _BODY_MARKERS:
        if marker in lowered_head:
            return what
    if _CF_ORCHESTRATE.search(lowered_head):
        return "Cloudflare challenge script"
    widget = next((w for w in _CAPTCHA_WIDGETS if w in lowered_head), None)
    if widget is not None and len(_LINK.findall(head)) < FEW_LINKS:
        return f"a captcha ({widget.decode('ascii')}) and almost no links"
    return None
