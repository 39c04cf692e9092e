"""Canonical article URLs and the article id derived from them.

The poller calls :func:`canonicalize_url` on every feed link, and the article id
(:func:`article_id`) is a hash of the result. That id is then the Kafka key, the
Elasticsearch ``_id`` and the key alerts refer to, so two spellings of one
article's URL (tracking parameters, AMP or mobile variants, ``http`` vs
``https``, ``www.`` or not, percent-encoded vs raw Arabic slugs) must give one
canonical string. The canonical URL is an identity key, not a fetch address:
fetch the URL the feed gave. Beyond the obvious folds, two choices are ours:
``http`` is folded to ``https`` and a leading ``www.`` is dropped, because
outlets serve the same article under both and the mobile-host fold
(``m.``/``amp.``/``mobile.``) is only consistent if the desktop host is bare.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from pipeline.errors import PermanentError

__all__ = ["article_id", "canonicalize_url"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

#: Query parameters that only track where a click came from. Prefixed families
#: (:data:`_TRACKING_PREFIXES`) are matched by prefix; everything is compared
#: lowercased.
_TRACKING_PARAMS: Final = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ocid",
        "cmpid",
        "xtor",
        "at_medium",
        "at_campaign",
        "ito",
        "ref",
        "ref_src",
        "spm",
        "share",
        "src",
        "s_cid",
        "mkt_tok",
        "__twitter_impression",
        "ns_source",
        "ns_mchannel",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
    }
)
#: Analytics families: Google (utm_), AT Internet as used by BBC and France 24
#: (at_), Matomo/Piwik (mtm_, pk_).
_TRACKING_PREFIXES: Final = ("utm_", "at_", "mtm_", "pk_")
#: AMP switches in the query: ``?amp``, ``?amp=1``, ``?outputType=amp`` (CNN).
_AMP_PARAMS: Final = frozenset({"amp", "amp_js_v", "usqp"})
#: Host prefixes that serve the same article in another presentation.
_HOST_PREFIXES: Final = ("www.", "amp.", "m.", "mobile.")
_AMP_PATH_PREFIX: Final = re.compile(r"^/amp(?=/)", re.IGNORECASE)
_AMP_PATH_SUFFIX: Final = re.compile(r"/amp/?$", re.IGNORECASE)
#: BBC Arabic serves AMP as ``<article>.amp``; no outlet ends a slug in ".amp".
_AMP_DOT_SUFFIX: Final = re.compile(r"\.amp$", re.IGNORECASE)

# Characters left unescaped inside one path segment (RFC 3986 pchar minus "/").
_SEGMENT_SAFE: Final = "!$&'()*+,;=:@-._~"


def _is_tracking(key: str) -> bool:
    k = key.lower()
    return k.startswith(_TRACKING_PREFIXES) or k in _TRACKING_PARAMS or k in _AMP_PARAMS


def _canonical_host(host: str) -> str:
    host = host.lower().rstrip(".")
    # Strip one presentation prefix at a time ("www.m.example.com" exists), but
    # never down to a bare TLD: "m.com" stays as it is.
    changed = True
    while changed:
        changed = False
        for prefix in _HOST_PREFIXES:
            rest = host[len(prefix) :]
            if host.startswith(prefix) and "." in rest:
                host, changed = rest, True
    return host


def _canonical_path(path: str) -> str:
    # Split before unquoting so an escaped "/" (%2F) stays inside its segment;
    # re-quoting then gives one spelling for raw and percent-encoded Arabic slugs.
    segments = [quote(unquote(seg), safe=_SEGMENT_SAFE) for seg in path.split("/")]
    path = "/".join(segments)
    path = _AMP_PATH_PREFIX.sub("", path)
    path = _AMP_PATH_SUFFIX.sub("", path)
    path = _AMP_DOT_SUFFIX.sub("", path)
    path = path.rstrip("/")
    return path or "/"


def canonicalize_url(url: str, base: str | None = None) -> str:
    """Return the canonical form of ``url``, resolved against ``base`` if relative.

    Raises :class:`PermanentError` (reason ``bad_url``) for anything that is not
    an absolute http(s) URL with a host after resolution.
    """
    raw = url.strip()
    if base:
        raw = urljoin(base.strip(), raw)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:  # malformed IPv6 host or port
        raise PermanentError("bad_url", f"{url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise PermanentError("bad_url", f"{url!r}: not an absolute http(s) URL")

    host = _canonical_host(parts.hostname)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"

    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(k) and not (k.lower() == "outputtype" and v.lower() == "amp")
    ]
    query = urlencode(sorted(query_pairs))
    # Userinfo and fragment never identify an article.
    return urlunsplit(("https", host, _canonical_path(parts.path), query, ""))


def article_id(canonical_url: str) -> str:
    """The stable article id: the first 32 hex digits of SHA-256 of the canonical URL."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


def page_canonical(item_canonical: str, final_url: str, rel_canonical: str | None) -> str:
    """The canonical URL an extracted page claims for itself, for the dedupe stage.

    The page's ``rel=canonical`` wins, then the URL the fetch ended on after
    redirects, then the feed's own link (``item_canonical``). A claim that is a
    site's home page (path ``/``, no query) is ignored: a common CMS bug gives
    every page that canonical, and following it would make every article of
    the site a copy of the first. The deduper adds a second guard: a canonical
    URL only makes a copy when it is an article rasd has itself seen.
    """
    for claim in (rel_canonical, final_url):
        if not claim:
            continue
        try:
            canonical = canonicalize_url(claim)
        except PermanentError:
            continue
        parts = urlsplit(canonical)
        if parts.path == "/" and not parts.query:
            continue
        return canonical
    return item_canonical
