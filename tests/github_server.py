"""A local GitHub on 127.0.0.1 for the bot's tests: a threaded HTTP server that keeps a repository's state (pull
requests, issue comments, labels, statuses, reviews) and answers the endpoints the bot uses with the recorded
exchanges' status codes, headers and body shapes (tests/github_recordings.py), `https://api.github.com` rewritten to
itself. It records every request and can answer the next N requests to a path with a recorded failure."""

from __future__ import annotations

import json
import math
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.github_recordings import REVIEW, Exchange, exchanges, failure, recorded
from tests.github_views import Answer, Comment, Label, Pull, Seen, Views

ISSUE_LABELS = "/repos/PyGithub/PyGithub/issues/31/labels"
BOT_TOKEN = "bot-token"
BOT_LOGIN = "github-actions[bot]"


Route = Callable[["GitHubServer", dict[str, str], Seen], Answer]


class GitHubServer:
    """The state of one repository behind a local REST API; `url` is what GITHUB_API_URL should be."""

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self.logins: dict[str, str] = {BOT_TOKEN: BOT_LOGIN}
        self.pulls: dict[int, Pull] = {}
        self.commits: set[str] = set()
        self.comments: dict[int, list[Comment]] = {}
        self.labels: dict[str, Label] = {}  # by name, casefolded (GitHub's label names ignore case)
        self.statuses: list[dict[str, Any]] = []
        self.graphql: list[dict[str, Any]] = []
        self.requests: list[Seen] = []
        self.errors: list[str] = []
        self._failures: list[list[Any]] = []  # [method, path, Exchange, remaining]
        self._next_id = 900_000_001
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.app = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.views = Views(self.url, repository)

    @contextmanager
    def running(self) -> Iterator[GitHubServer]:
        thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._http.shutdown()
            self._http.server_close()
            thread.join(5)

    # ---- state set up by tests

    def add_pull(self, number: int, head_sha: str, head_repo: str | None = None, **kw: Any) -> Pull:
        pull = Pull(number, head_sha, head_repo or self.repository, **kw)
        self.pulls[number] = pull
        self.commits.add(head_sha)
        self.comments.setdefault(number, [])
        for name in pull.labels:
            self.labels.setdefault(name.casefold(), Label(name, "ededed", None))
        return pull

    def add_comment(self, number: int, body: str, login: str) -> Comment:
        comment = Comment(self._new_id(), body, login)
        self.comments.setdefault(number, []).append(comment)
        return comment

    def add_label(self, name: str, color: str = "ededed", description: str | None = None) -> None:
        self.labels[name.casefold()] = Label(name, color, description)

    def fail(self, method: str, path: str, kind: str, times: int = 1) -> None:
        """Answer the next `times` requests `method path` with the recorded failure `kind`."""
        self._failures.append([method, path, failure(kind), times])

    # ---- what tests assert on

    def seen(self, method: str | None = None, path_contains: str = "") -> list[Seen]:
        return [r for r in self.requests if (method is None or r.method == method) and path_contains in r.path]

    def bot_comments(self, number: int) -> list[Comment]:
        return [c for c in self.comments.get(number, []) if c.login == BOT_LOGIN]

    # ---- request handling

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def handle(self, seen: Seen) -> Answer:
        with self._lock:
            self.requests.append(seen)
            injected = self._injected(seen)
            if injected is not None:
                return self._recorded(injected)
            if seen.token not in self.logins:
                return self._recorded(failure("unauthorized"))
            route, params = _route(seen, self.repository)
            if route is None:
                return self._recorded(failure("not_found"))
            try:
                return route(self, params, seen)
            except Exception as exc:  # a defect of this server: tests assert `errors` is empty
                self.errors.append(f"{seen.method} {seen.path}: {exc!r}")
                return Answer(599, [], {"message": repr(exc)})

    def _injected(self, seen: Seen) -> Exchange | None:
        for entry in self._failures:
            if entry[0] == seen.method and entry[1] == seen.path and entry[3] > 0:
                entry[3] -= 1
                return entry[2]  # type: ignore[no-any-return]
        return None

    def _recorded(self, exchange: Exchange) -> Answer:
        return Answer(exchange.status, exchange.answer_headers(self.url), exchange.data())

    def answer(self, exchange: Exchange, body: Any, extra: list[tuple[str, str]] | None = None) -> Answer:
        """The recorded exchange's status and headers (a recorded Location replaced by `extra`'s), with `body`."""
        names = {k.lower() for k, _ in extra or []}
        return Answer(exchange.status, exchange.answer_headers(self.url, frozenset(names)) + (extra or []), body)

    def page(self, exchange: Exchange, seen: Seen, items: list[Any]) -> Answer:
        """One page of a list, with GitHub's `Link` header (rel next/last, and first/prev past page one)."""
        per_page, number = int(seen.query.get("per_page", 30)), int(seen.query.get("page", 1))
        last = max(1, math.ceil(len(items) / per_page))

        def link(page: int, rel: str) -> str:
            query = urllib.parse.urlencode({**seen.query, "page": str(page)})
            return f'<{self.url}{seen.path}?{query}>; rel="{rel}"'

        links = [link(number + 1, "next"), link(last, "last")] if number < last else []
        links += [link(1, "first"), link(number - 1, "prev")] if number > 1 else []
        chunk = items[(number - 1) * per_page : number * per_page]
        return self.answer(exchange, chunk, [("Link", ", ".join(links))] if links else [])

    def login(self, seen: Seen) -> str:
        return self.logins[seen.token or ""]

    def label_views(self, pull: Pull, exchange: Exchange | None = None) -> list[dict[str, Any]]:
        """The pull request's labels in the shape of a recorded issue-labels answer."""
        template = (exchange or recorded("PullRequest.testGetLabels.txt", "GET", ISSUE_LABELS)).data()[0]
        return [self.views.label(template, self.labels[name.casefold()]) for name in pull.labels]

    def pull(self, params: dict[str, str]) -> Pull | None:
        return self.pulls.get(int(params["n"]))


def _route(seen: Seen, repository: str) -> tuple[Route | None, dict[str, str]]:
    if seen.method == "POST" and seen.path == "/graphql":
        return _graphql, {}
    prefix = f"/repos/{repository}".lower()
    if not seen.path.lower().startswith(prefix):
        return None, {}
    rest = seen.path[len(prefix) :]
    for method, pattern, route in ROUTES:
        match = re.fullmatch(pattern, rest)
        if method == seen.method and match:
            return route, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
    return None, {}


# ---- routes: each answers with the recorded exchange of the same request


def _get_repo(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    exchange = recorded("PullRequest.setUp.txt", "GET", "/repos/PyGithub/PyGithub")
    return s.answer(exchange, s.views.repository(exchange.data()))


def _get_commit(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    if p["sha"] not in s.commits:
        return s._recorded(failure("not_found"))
    exchange = exchanges("Commit.setUp.txt")[2]
    return s.answer(exchange, s.views.commit(exchange.data(), p["sha"]))


def _commit_pulls(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    exchange = exchanges("Commit.testGetPulls.txt")[3]
    template = exchange.data()[0]
    found = [
        s.views.pull(template, pull, s.label_views(pull)) for pull in s.pulls.values() if pull.head_sha == p["sha"]
    ]
    return s.page(exchange, seen, found)


def _get_pull(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    pull = s.pull(p)
    if pull is None:
        return s._recorded(failure("not_found"))
    exchange = recorded("PullRequest.setUp.txt", "GET", "/repos/PyGithub/PyGithub/pulls/31")
    return s.answer(exchange, s.views.pull(exchange.data(), pull, s.label_views(pull)))


def _list_reviews(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    pull = s.pull(p)
    if pull is None:
        return s._recorded(failure("not_found"))
    reviews = [s.views.review(REVIEW.data(), pull, i, *review) for i, review in enumerate(pull.reviews)]
    return s.page(REVIEW, seen, reviews)


def _list_comments(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    exchange = recorded("PullRequest.testGetIssueComments.txt", "GET", "/repos/PyGithub/PyGithub/issues/31/comments")
    template = exchange.data()[0]
    comments = [s.views.comment(template, int(p["n"]), c) for c in s.comments.get(int(p["n"]), [])]
    return s.page(exchange, seen, comments)


def _create_comment(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    if s.pull(p) is None:
        return s._recorded(failure("not_found"))
    body = seen.body.get("body") if isinstance(seen.body, dict) else None
    if not isinstance(body, str) or len(body) > 65_536:
        return s._recorded(failure("invalid"))
    comment = s.add_comment(int(p["n"]), body, s.login(seen))
    exchange = recorded("PullRequest.testCreateIssueComment.txt", "POST", "/repos/PyGithub/PyGithub/issues/31/comments")
    view = s.views.comment(exchange.data(), int(p["n"]), comment)
    return s.answer(exchange, view, [("location", view["url"])])


def _edit_comment(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    found = [(n, c) for n, cs in s.comments.items() for c in cs if c.id == int(p["id"])]
    body = seen.body.get("body") if isinstance(seen.body, dict) else None
    if not found:
        return s._recorded(failure("not_found"))
    if not isinstance(body, str) or len(body) > 65_536:
        return s._recorded(failure("invalid"))
    number, comment = found[0]
    comment.body = body
    exchange = recorded("IssueComment.testEdit.txt", "PATCH", "/repos/PyGithub/PyGithub/issues/comments/20227753")
    return s.answer(exchange, s.views.comment(exchange.data(), number, comment))


def _list_labels(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    exchange = recorded("Repository.testGetLabels.txt", "GET", "/repos/PyGithub/PyGithub/labels")
    return s.page(exchange, seen, [s.views.label(exchange.data()[0], label) for label in s.labels.values()])


def _create_label(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    body = seen.body if isinstance(seen.body, dict) else {}
    name, color = body.get("name"), body.get("color")
    if not isinstance(name, str) or not isinstance(color, str) or name.casefold() in s.labels:
        return s._recorded(failure("invalid"))
    label = Label(name, color, body.get("description"))
    s.labels[name.casefold()] = label
    exchange = recorded("Repository.testCreateLabel.txt", "POST", "/repos/PyGithub/PyGithub/labels")
    view = s.views.label(exchange.data(), label)
    return s.answer(exchange, view, [("location", view["url"])])


def _issue_labels(s: GitHubServer, pull: Pull, exchange: Exchange) -> Answer:
    return s.answer(exchange, s.label_views(pull, exchange))


def _list_issue_labels(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    pull = s.pull(p)
    if pull is None:
        return s._recorded(failure("not_found"))
    return s.page(recorded("PullRequest.testGetLabels.txt", "GET", ISSUE_LABELS), seen, s.label_views(pull))


def _add_issue_labels(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    pull = s.pull(p)
    names = seen.body if isinstance(seen.body, list) else None
    if pull is None:
        return s._recorded(failure("not_found"))
    if not names or not all(isinstance(n, str) for n in names):
        return s._recorded(failure("invalid"))
    for name in names:
        # GitHub creates a label it does not know yet, with a default color and no description.
        s.labels.setdefault(name.casefold(), Label(name, "ededed", None, implicit=True))
        if name.casefold() not in {n.casefold() for n in pull.labels}:
            pull.labels.append(s.labels[name.casefold()].name)
    added = next(e for e in exchanges("PullRequest.testAddAndRemoveLabels.txt") if e.method == "POST")
    return _issue_labels(s, pull, added)


def _remove_issue_label(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    pull = s.pull(p)
    if pull is None or p["name"].casefold() not in {n.casefold() for n in pull.labels}:
        return s._recorded(failure("not_found"))
    pull.labels = [n for n in pull.labels if n.casefold() != p["name"].casefold()]
    removed = next(e for e in exchanges("PullRequest.testAddAndRemoveLabels.txt") if e.method == "DELETE")
    return _issue_labels(s, pull, removed)


def _create_status(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    body = seen.body if isinstance(seen.body, dict) else {}
    states = {"error", "failure", "pending", "success"}
    if body.get("state") not in states or len(body.get("description") or "") > 140 or p["sha"] not in s.commits:
        return s._recorded(failure("invalid" if p["sha"] in s.commits else "not_found"))
    s.statuses.append({"sha": p["sha"], **body})
    exchange = exchanges("Commit.testCreateStatusWithAllParameters.txt")[0]
    view = s.views.status(exchange.data(), p["sha"], body, len(s.statuses), s.login(seen))
    return s.answer(exchange, view, [("location", view["url"])])


def _graphql(s: GitHubServer, p: dict[str, str], seen: Seen) -> Answer:
    exchange = recorded("PullRequest.testEnableAutomerge.txt", "POST", "/graphql")
    variables = (seen.body or {}).get("variables", {}).get("input", {})
    s.graphql.append(seen.body)
    for pull in s.pulls.values():
        if pull.node_id == variables.get("pullRequestId"):
            pull.auto_merge = variables
    return s.answer(exchange, exchange.data())


SHA = r"(?P<sha>[0-9a-fA-F]{40})"
ROUTES: tuple[tuple[str, str, Route], ...] = (
    ("GET", r"", _get_repo),
    ("GET", rf"/commits/{SHA}", _get_commit),
    ("GET", rf"/commits/{SHA}/pulls", _commit_pulls),
    ("POST", rf"/statuses/{SHA}", _create_status),
    ("GET", r"/pulls/(?P<n>\d+)", _get_pull),
    ("GET", r"/pulls/(?P<n>\d+)/reviews", _list_reviews),
    ("GET", r"/issues/(?P<n>\d+)/comments", _list_comments),
    ("POST", r"/issues/(?P<n>\d+)/comments", _create_comment),
    ("PATCH", r"/issues/comments/(?P<id>\d+)", _edit_comment),
    ("GET", r"/labels", _list_labels),
    ("POST", r"/labels", _create_label),
    ("GET", r"/issues/(?P<n>\d+)/labels", _list_issue_labels),
    ("POST", r"/issues/(?P<n>\d+)/labels", _add_issue_labels),
    ("DELETE", r"/issues/(?P<n>\d+)/labels/(?P<name>.+)", _remove_issue_label),
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; keep-alive must not stall on them

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        auth = (self.headers.get("Authorization") or "").split(" ", 1)
        seen = Seen(
            self.command,
            url.path,
            dict(urllib.parse.parse_qsl(url.query)),
            json.loads(raw) if raw else None,
            auth[1] if len(auth) == 2 else None,
        )
        answer = self.server.app.handle(seen)  # type: ignore[attr-defined]
        data = b"" if answer.body is None else json.dumps(answer.body, separators=(",", ":")).encode()
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on `GitHubServer.requests` instead."""
