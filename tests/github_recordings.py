"""Real GitHub REST exchanges, read in place from `FIXTURES` below, a `shared/fixtures` directory beside the repository
checkout that is not part of it (the tests that need it skip without it): `github-api/` (recorded by PyGithub's own test
suite): the local GitHub server answers with their status codes, headers and body shapes, never with bodies written
from memory. Where the fixtures hold no recording of an answer, the one used says where it comes from."""

from __future__ import annotations

import ast
import copy
import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
API_DIR = FIXTURES / "github-api"
EVENTS_DIR = FIXTURES / "github-events"
SKIP_REASON = f"the shared GitHub fixtures are not at {FIXTURES} (they live beside the repository checkout)"
RECORDED_API = "https://api.github.com"
# Hop-by-hop and encoding headers are the recording's transport; the server sends its own plain-text framing.
TRANSPORT_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "status", "connection"})


@dataclass(frozen=True)
class Exchange:
    """One recorded request and GitHub's answer."""

    source: str  # file name, for messages
    method: str
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: str

    def data(self) -> Any:
        """The answer's JSON body (a fresh copy each call, so callers may change it)."""
        return copy.deepcopy(_parsed(self.body)) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def answer_headers(self, api: str, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        """The recorded headers a client sees, `https://api.github.com` rewritten to `api`."""
        skip = TRANSPORT_HEADERS | {d.lower() for d in drop}
        return [(k, v.replace(RECORDED_API, api)) for k, v in self.headers if k.lower() not in skip]


@functools.cache
def _parsed(body: str) -> Any:
    return json.loads(body)


@functools.cache
def exchanges(name: str) -> tuple[Exchange, ...]:
    """Every exchange of one recording file: records of ten lines, one blank line between records."""
    lines = (API_DIR / name).read_text(encoding="utf-8").split("\n")
    found: list[Exchange] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("http"):
            i += 1
            continue
        _scheme, method, _host, _port, path, _headers, _body, status, headers, body = lines[i : i + 10]
        pairs = tuple((str(k), str(v)) for k, v in ast.literal_eval(headers))
        found.append(Exchange(name, method, path, int(status), pairs, body))
        i += 10
    return tuple(found)


def recorded(name: str, method: str, path: str) -> Exchange:
    """The recorded exchange of `method` on `path` (query ignored) in file `name`."""
    for exchange in exchanges(name):
        if exchange.method == method and exchange.path.split("?")[0] == path:
            return exchange
    raise LookupError(f"{name} has no recorded {method} {path}")


# The fixtures hold no recorded list of reviews; this answer is the APPROVED review (by the repository's owner)
# that PyGithub recorded in tests/ReplayData/PullRequestReview.setUp.txt (commit 0792bc9c), headers and body as
# recorded; the server serves the reviews list as a list of this shape.
_REVIEW_HEADERS = (
    ("content-length", "1418"),
    ("x-runtime-rack", "0.166821"),
    ("vary", "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding"),
    (
        "x-oauth-scopes",
        "admin:gpg_key, admin:org, admin:org_hook, admin:public_key, admin:repo_hook, delete_repo, gist, "
        "notifications, repo, user, write:discussion",
    ),
    ("x-xss-protection", "1; mode=block"),
    ("x-content-type-options", "nosniff"),
    ("x-accepted-oauth-scopes", ""),
    ("etag", '"d9b71d9dcbbca4b597df3b00efc8cb2a"'),
    ("cache-control", "private, max-age=60, s-maxage=60"),
    ("referrer-policy", "origin-when-cross-origin, strict-origin-when-cross-origin"),
    ("status", "200 OK"),
    ("x-ratelimit-remaining", "4545"),
    ("x-github-media-type", "github.v3; format=json"),
    (
        "access-control-expose-headers",
        "ETag, Link, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
        "X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval",
    ),
    ("x-github-request-id", "DDDD:9B6D:C86D83:EADA76:5AB118D3"),
    ("date", "Tue, 20 Mar 2018 14:21:09 GMT"),
    ("access-control-allow-origin", "*"),
    ("content-security-policy", "default-src 'none'"),
    ("strict-transport-security", "max-age=31536000; includeSubdomains; preload"),
    ("server", "GitHub.com"),
    ("x-ratelimit-limit", "5000"),
    ("x-frame-options", "deny"),
    ("content-type", "application/json; charset=utf-8"),
    ("x-ratelimit-reset", "1521556163"),
)
_REVIEW_BODY = (
    '{"id":28482091,"user":{"login":"jzelinskie","id":343539,"avatar_url":"https://avatars3.githubusercon'
    'tent.com/u/343539?v=4","gravatar_id":"","url":"https://api.github.com/users/jzelinskie","html_url":"'
    'https://github.com/jzelinskie","followers_url":"https://api.github.com/users/jzelinskie/followers","'
    'following_url":"https://api.github.com/users/jzelinskie/following{/other_user}","gists_url":"https:/'
    '/api.github.com/users/jzelinskie/gists{/gist_id}","starred_url":"https://api.github.com/users/jzelin'
    'skie/starred{/owner}{/repo}","subscriptions_url":"https://api.github.com/users/jzelinskie/subscripti'
    'ons","organizations_url":"https://api.github.com/users/jzelinskie/orgs","repos_url":"https://api.git'
    'hub.com/users/jzelinskie/repos","events_url":"https://api.github.com/users/jzelinskie/events{/privac'
    'y}","received_events_url":"https://api.github.com/users/jzelinskie/received_events","type":"User","s'
    'ite_admin":false},"body":"","state":"APPROVED","html_url":"https://github.com/PyGithub/PyGithub/pull'
    '/538#pullrequestreview-28482091","pull_request_url":"https://api.github.com/repos/PyGithub/PyGithub/'
    'pulls/538","author_association":"OWNER","_links":{"html":{"href":"https://github.com/PyGithub/PyGith'
    'ub/pull/538#pullrequestreview-28482091"},"pull_request":{"href":"https://api.github.com/repos/PyGith'
    'ub/PyGithub/pulls/538"}},"submitted_at":"2017-03-22T19:06:59Z","commit_id":"7a0fcb27b7cd6c346fc3f762'
    '16ccb6e0f4ca3bcc"}'
)
REVIEW = Exchange(
    "PyGithub tests/ReplayData/PullRequestReview.setUp.txt",
    "GET",
    "/repos/PyGithub/PyGithub/pulls/538/reviews/28482091",
    200,
    _REVIEW_HEADERS,
    _REVIEW_BODY,
)


def failure(kind: str) -> Exchange:
    """A recorded error answer to inject: its status, headers (rate-limit, Retry-After) and body."""
    limited = next(e for e in exchanges("SpecificExceptions.testAuthenticatedRateLimitExceeded.txt") if e.status == 403)
    no_retry_after = tuple(h for h in limited.headers if h[0].lower() != "retry-after")
    not_found = recorded("Exceptions.testUnknownObject.txt", "GET", "/repos/jacquev6/Xxx")
    answers = {
        "secondary_rate_limit": limited,
        # The same answer without Retry-After: PyGithub then reads the message and waits secondary_rate_wait.
        "secondary_rate_limit_no_retry_after": replace(limited, headers=no_retry_after),
        "unauthorized": recorded("Exceptions.testBadAuthentication.txt", "GET", "/user"),
        "not_found": not_found,
        "invalid": recorded("Exceptions.testInvalidInput.txt", "POST", "/user/keys"),
        # No recording holds a permission 403 or a 5xx: the 403 keeps the recorded 403's headers (without
        # Retry-After), the 5xx the recorded 404's; each carries the message GitHub documents for it.
        "forbidden": replace(
            limited, headers=no_retry_after, body=json.dumps({"message": "Resource not accessible by integration"})
        ),
        "server_error": replace(not_found, status=500, body=json.dumps({"message": "Server Error"})),
        "bad_gateway": replace(not_found, status=502, body=json.dumps({"message": "Server Error"})),
    }
    return answers[kind]


def event_files() -> list[Path]:
    """The recorded webhook payloads, sorted by name."""
    return sorted(EVENTS_DIR.glob("*.json"))
