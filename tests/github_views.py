"""The local GitHub's state records and JSON objects: each object is a recorded body (tests/github_recordings.py)
moved to the served repository and the local server's address, with the fields that carry state (numbers, ids, SHAs,
bodies, logins, names) set from the server's state. Every other field keeps its recorded value."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from tests.github_recordings import RECORDED_API


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str  # as sent, without the query
    query: dict[str, str]
    body: Any  # the decoded JSON body, or None
    token: str | None


@dataclass
class Comment:
    id: int
    body: str
    login: str


@dataclass
class Pull:
    number: int
    head_sha: str
    head_repo: str
    state: str = "open"
    body: str | None = None  # GitHub sends null for a pull request without a description
    labels: list[str] = field(default_factory=list)
    reviews: list[tuple[str, str, str]] = field(default_factory=list)  # (login, state, author_association)
    auto_merge: dict[str, Any] | None = None

    @property
    def node_id(self) -> str:
        return f"PR_node_{self.number}"


@dataclass
class Label:
    name: str
    color: str
    description: str | None
    implicit: bool = False  # created by adding it to an issue, not by POST /labels


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: Any


class Views:
    """Builds the served objects for one repository (`owner/name`) behind the API at `api`."""

    def __init__(self, api: str, repository: str) -> None:
        self.api = api
        self.full_name = repository
        self.repo_api = f"{api}/repos/{repository}"

    def _moved(self, value: Any, recorded_repo: str, *swaps: tuple[str, str]) -> Any:
        """`value` with the recorded API address, repository and item numbers replaced in every string."""
        text = json.dumps(value).replace(RECORDED_API, self.api)
        text = text.replace(f"/repos/{recorded_repo}/", f"/repos/{self.full_name}/")
        text = text.replace(f'/repos/{recorded_repo}"', f'/repos/{self.full_name}"')
        text = text.replace(f"github.com/{recorded_repo}/", f"github.com/{self.full_name}/")
        for old, new in swaps:
            text = text.replace(old, new)
        return json.loads(text)

    def user(self, template: dict[str, Any], login: str) -> dict[str, Any]:
        recorded_login = template["login"]
        user: dict[str, Any] = json.loads(json.dumps(template).replace(f"/{recorded_login}", f"/{login}"))
        user["login"] = login
        user["url"] = f"{self.api}/users/{urllib.parse.quote(login)}"
        return user

    def repository(self, template: dict[str, Any]) -> dict[str, Any]:
        repo: dict[str, Any] = self._moved(template, template["full_name"])
        repo["full_name"] = self.full_name
        repo["name"] = self.full_name.split("/")[1]
        repo["owner"] = self.user(repo["owner"], self.full_name.split("/")[0])
        repo["url"] = self.repo_api
        return repo

    def commit(self, template: dict[str, Any], sha: str) -> dict[str, Any]:
        recorded_repo = template["url"].split("/repos/")[1].split("/commits/")[0]
        commit: dict[str, Any] = self._moved(template, recorded_repo, (template["sha"], sha))
        commit["sha"] = sha
        commit["url"] = f"{self.repo_api}/commits/{sha}"
        return commit

    def pull(self, template: dict[str, Any], pull: Pull, labels: list[dict[str, Any]]) -> dict[str, Any]:
        n0, n = template["number"], pull.number
        swaps = [(f"/pulls/{n0}", f"/pulls/{n}"), (f"/issues/{n0}", f"/issues/{n}"), (f"/pull/{n0}", f"/pull/{n}")]
        view: dict[str, Any] = self._moved(template, template["base"]["repo"]["full_name"], *swaps)
        view.update(number=n, state=pull.state, node_id=pull.node_id, body=pull.body, auto_merge=pull.auto_merge)
        view.update(url=f"{self.repo_api}/pulls/{n}", issue_url=f"{self.repo_api}/issues/{n}")
        view.update(
            comments_url=f"{self.repo_api}/issues/{n}/comments",
            html_url=f"https://github.com/{self.full_name}/pull/{n}",
        )
        view["labels"] = labels
        if "merged" in view:
            view.update(merged=False, merged_at=None, merge_commit_sha=None, closed_at=None)
        view["head"]["sha"] = pull.head_sha
        # A recorded head repository may be null (a deleted fork): the base repository's shape stands in.
        head_repo = view["head"]["repo"] = view["head"]["repo"] or json.loads(json.dumps(view["base"]["repo"]))
        head_repo.update(full_name=pull.head_repo, fork=pull.head_repo != self.full_name)
        head_repo["url"] = f"{self.api}/repos/{pull.head_repo}"
        view["base"]["repo"].update(full_name=self.full_name, url=self.repo_api)
        return view

    def comment(self, template: dict[str, Any], number: int, comment: Comment) -> dict[str, Any]:
        recorded_repo = template["url"].split("/repos/")[1].split("/issues/")[0]
        view: dict[str, Any] = self._moved(template, recorded_repo, (str(template["id"]), str(comment.id)))
        view.update(id=comment.id, body=comment.body, url=f"{self.repo_api}/issues/comments/{comment.id}")
        view["user"] = self.user(view["user"], comment.login)
        if "issue_url" in view:
            view["issue_url"] = f"{self.repo_api}/issues/{number}"
        if "html_url" in view:
            view["html_url"] = f"https://github.com/{self.full_name}/pull/{number}#issuecomment-{comment.id}"
        return view

    def label(self, template: dict[str, Any], label: Label) -> dict[str, Any]:
        view = {**template, "name": label.name, "color": label.color, "description": label.description}
        view["url"] = f"{self.repo_api}/labels/{urllib.parse.quote_plus(label.name)}"
        return view

    def status(
        self, template: dict[str, Any], sha: str, posted: dict[str, Any], number: int, login: str
    ) -> dict[str, Any]:
        view: dict[str, Any] = self._moved(template, template["url"].split("/repos/")[1].split("/statuses/")[0])
        view.update(id=number, url=f"{self.repo_api}/statuses/{number}", state=posted["state"])
        view.update(description=posted.get("description"), target_url=posted.get("target_url"))
        view["context"] = posted.get("context", "default")
        view["creator"] = self.user(view["creator"], login)
        return view

    def review(
        self, template: dict[str, Any], pull: Pull, index: int, login: str, state: str, association: str
    ) -> dict[str, Any]:
        view: dict[str, Any] = self._moved(template, "PyGithub/PyGithub", ("/pulls/538", f"/pulls/{pull.number}"))
        view.update(id=template["id"] + index, state=state, author_association=association, commit_id=pull.head_sha)
        view["user"] = self.user(view["user"], login)
        view["pull_request_url"] = f"{self.repo_api}/pulls/{pull.number}"
        return view
