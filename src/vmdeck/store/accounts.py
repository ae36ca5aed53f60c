"""Accounts, passwords, sign-in sessions and API tokens (store layer).

Passwords are hashed with Argon2id (argon2-cffi). Session cookies and API
tokens are 256-bit random strings; the database keeps only their SHA-256, which
is enough for values that cannot be guessed and keeps look-ups a single index hit.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from vmdeck.errors import Conflict, InvalidInput, NotFound
from vmdeck.store.db import ApiToken, Membership, Project, User, WebSession, affected, utcnow
from vmdeck.store.tenancy import ROLES, check_role, role_rank

__all__ = ["Principal", "Accounts", "TOKEN_SCOPES", "ensure_admin", "token_digest", "credential_reference"]

_hasher = PasswordHasher()
TOKEN_PREFIX = "vmd_"
# Scopes a token may be limited to (migration 0011); vmdeck.api.policy.SCOPES says what each allows.
TOKEN_SCOPES = ("metrics",)


def credential_reference(principal: Principal) -> str | None:
    """What names the caller's credential without being it ("token:ID", "session:DIGEST"), for
    Accounts.by_reference; None for a caller with neither (root on the local socket)."""
    if principal.via == "token" and principal.token_id is not None:
        return f"token:{principal.token_id}"
    if principal.via == "session" and principal.session_digest:
        return f"session:{principal.session_digest}"
    return None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in browser (with its CSRF token) or a script with an API token."""

    user_id: int
    username: str
    is_admin: bool
    via: str  # "session" | "token"
    csrf_token: str | None = None
    roles: tuple[tuple[str, str], ...] = ()  # (project, role) of each membership
    token_project: str | None = None  # an API token works in this project only ...
    token_role: str | None = None  # ... with at most this role
    session_digest: str | None = None  # which sign-in this is (a password change keeps only this one)
    token_scopes: tuple[str, ...] | None = None  # a token limited to these kinds of calls (None: no limit)
    token_id: int | None = None  # the API token calling (via "token"): it manages itself only
    token_expires_at: dt.datetime | None = None  # ... and mints tokens that expire no later than this

    @property
    def admin(self) -> bool:
        """Host administrator powers: an admin's account, unless it acts through a project-scoped token."""
        return self.is_admin and self.token_project is None

    def role_in(self, project: str | None) -> str | None:
        """The caller's role in `project` (None: no access), capped by the token's scope."""
        if project is None:
            return None
        role = dict(self.roles).get(project)
        if self.via == "token" and self.token_project is not None:
            if project != self.token_project:
                return None
            if self.is_admin:  # an admin's project token: the role it was given
                role = self.token_role
            elif role_rank(self.token_role) < role_rank(role):
                role = self.token_role
        return role

    def projects(self, min_role: str = "viewer") -> list[str]:
        """Projects where the caller has at least `min_role`."""
        names = {p for p, _r in self.roles}
        if self.token_project is not None:
            names = {self.token_project}
        return sorted(p for p in names if role_rank(self.role_in(p)) >= role_rank(min_role))


# Every API request resolves its caller: a few seconds of memory saves a database read per request
# (and SQLite's single writer from 20 clients at once). Sign-out and token deletion drop entries at once.
_CACHE_S = 10.0
# last_used_at is a hint for people, not an audit log: written at most once a minute per token.
_TOUCH_S = 60.0


class Accounts:
    def __init__(self, db: sessionmaker[Session], session_ttl: float) -> None:
        self.db = db
        self.session_ttl = session_ttl
        self._cache: dict[str, tuple[Principal, float, dt.datetime | None]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` (from the changing thread) after every change to sessions, tokens, passwords or
        roles: the API re-checks its open websockets then (vmdeck.api.revocation)."""
        with self._lock:
            self._listeners.append(listener)

    def _cached(self, digest: str) -> Principal | None:
        with self._lock:
            entry = self._cache.get(digest)
        if entry is None:
            return None
        principal, until, expires_at = entry
        if time.monotonic() > until or (expires_at is not None and expires_at < utcnow()):
            with self._lock:
                self._cache.pop(digest, None)
            return None
        return principal

    def _remember(self, digest: str, principal: Principal, expires_at: dt.datetime | None) -> None:
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, time.monotonic() + _CACHE_S, expires_at)

    def _forget_all(self) -> None:
        with self._lock:
            self._cache.clear()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    # --- users -------------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, *, is_admin: bool = False) -> int:
        if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput("username: use 1-64 letters, digits, '-' or '_'", field="username")
        if len(password) < 8:
            raise InvalidInput("password: at least 8 characters", field="password")
        with self.db.begin() as s:
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"a user named {username!r} already exists")
            user = User(username=username, password_hash=_hasher.hash(password), is_admin=is_admin)
            s.add(user)
            s.flush()
            return user.id

    def set_password(self, user_id: int, old: str, new: str, *, keep_session: str | None = None) -> int:
        """Change the password; every other sign-in of the user ends (a thief's session too), and every
        API token of the user is revoked (a thief may have made one). Returns how many sessions ended."""
        return self.change_password(user_id, old, new, keep_session=keep_session)[0]

    def change_password(self, user_id: int, old: str, new: str, *,
                        keep_session: str | None = None) -> tuple[int, int]:
        """As set_password; (sessions ended, tokens revoked).

        `keep_session`: the digest of the session making the change, which stays signed in.
        """
        if len(new) < 8:
            raise InvalidInput("new_password: at least 8 characters", field="new_password")
        with self.db.begin() as s:
            user = s.get(User, user_id)
            if user is None or not _verify(user.password_hash, old):
                raise InvalidInput("the current password is wrong", field="old_password")
            user.password_hash = _hasher.hash(new)
            ended = affected(s.execute(delete(WebSession).where(WebSession.user_id == user_id,
                                                                WebSession.token_hash != (keep_session or ""))))
            revoked = _revoke_all_tokens(s, user_id)
        self._forget_all()
        return int(ended or 0), revoked

    def reset_password(self, username: str, new: str) -> None:
        """The host administrator's recovery (`vmdeck user passwd`): no old password; every session ends
        and every API token of the user is revoked."""
        if len(new) < 8:
            raise InvalidInput("password: at least 8 characters", field="password")
        with self.db.begin() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user named {username!r}")
            user.password_hash = _hasher.hash(new)
            s.execute(delete(WebSession).where(WebSession.user_id == user.id))
            _revoke_all_tokens(s, user.id)
        self._forget_all()

    def forget_cached(self) -> None:
        """Drop remembered callers (after a change to roles, users or tokens)."""
        self._forget_all()

    def count_users(self, *, admins_only: bool = False) -> int:
        query = select(User.id).where(User.is_admin) if admins_only else select(User.id)
        with self.db() as s:
            return len(s.scalars(query).all())

    # --- sign-in sessions --------------------------------------------------------------------------
    def sign_in(self, username: str, password: str) -> tuple[str, Principal] | None:
        """(cookie value, principal) for the right password, None otherwise (the caller says 401)."""
        with self.db.begin() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                # Spend the same time as a real check: response time does not tell which names exist.
                _verify(_dummy_hash(), password)
                return None
            if not _verify(user.password_hash, password) or user.disabled:
                return None
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(32)
            now = utcnow()
            s.add(WebSession(token_hash=token_digest(token), user_id=user.id, csrf_token=csrf,
                             expires_at=now + dt.timedelta(seconds=self.session_ttl)))
            s.execute(delete(WebSession).where(WebSession.expires_at < now))
            return token, Principal(user.id, user.username, user.is_admin, "session", csrf, _roles(s, user.id),
                                    session_digest=token_digest(token))

    def _caller(self, digest: str, fresh: bool,
                read: Callable[[Session], tuple[Principal, dt.datetime | None] | None]) -> Principal | None:
        """The one way a cookie or an API token becomes its caller: remembered (unless `fresh`), else `read` from
        the database (None: unknown, lapsed, revoked or its user disabled) and remembered until it expires."""
        if not fresh and (cached := self._cached(digest)) is not None:
            return cached
        with self.db() as s:
            found = read(s)
        if found is None:
            return None
        principal, expires_at = found
        self._remember(digest, principal, expires_at)
        return principal

    def from_session(self, cookie: str, *, fresh: bool = False) -> Principal | None:
        """The session's caller; `fresh`: read the database even when remembered (a re-check)."""
        digest = token_digest(cookie)
        return self._caller(digest, fresh, self._session_reader(digest))

    def by_reference(self, reference: str) -> Principal | None:
        """The caller a credential reference (`credential_reference`) stands for now, read afresh: the re-check
        of a console opened from a link, which carries no credential of its own. None: revoked, lapsed,
        signed out or disabled."""
        kind, _, key = reference.partition(":")
        if kind == "token" and key.isdigit():
            return self._caller(reference, True, self._token_reader(ApiToken.id == int(key)))
        if kind == "session" and key:
            return self._caller(key, True, self._session_reader(key))
        return None

    def _session_reader(self, digest: str) -> Callable[[Session], tuple[Principal, dt.datetime | None] | None]:
        def read(s: Session) -> tuple[Principal, dt.datetime | None] | None:
            row = s.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                            .where(WebSession.token_hash == digest)).first()
            if row is None:
                return None
            web_session, user = row
            if web_session.expires_at < utcnow() or user.disabled:
                return None
            return Principal(user.id, user.username, user.is_admin, "session", web_session.csrf_token,
                             _roles(s, user.id), session_digest=digest), web_session.expires_at

        return read

    def sign_out(self, cookie: str) -> None:
        with self.db.begin() as s:
            s.execute(delete(WebSession).where(WebSession.token_hash == token_digest(cookie)))
        self._forget_all()

    # --- API tokens --------------------------------------------------------------------------------
    def create_token(self, user_id: int, name: str, *, project: str | None = None, role: str | None = None,
                     expires_in_days: float | None = 90.0, scopes: tuple[str, ...] | None = None,
                     caller: Principal | None = None, clamp_to_caller: bool = False) -> tuple[int, str]:
        """A token for one project with a role no higher than the owner's there (admins: also host-wide,
        project None). Expires after `expires_in_days` (None: never, admins only).

        `caller`: who asks. When that is an API token, the new token stays within it: the same project,
        at most its role there, expiring no later than it does (a token never mints a stronger one);
        `clamp_to_caller`: a lifetime the user did not choose ends with the calling token's instead.
        """
        if not name or len(name) > 64:
            raise InvalidInput("name: 1-64 characters", field="name")
        if scopes is not None and (not scopes or any(s not in TOKEN_SCOPES for s in scopes)):
            raise InvalidInput(f"scopes: one or more of {', '.join(TOKEN_SCOPES)}", field="scopes")
        if expires_in_days is not None and not 0 < expires_in_days <= 3650:
            raise InvalidInput("expires_in_days: between 0 and 3650", field="expires_in_days")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.begin() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound(f"no user with id {user_id}")
            project_id = None
            if project is None:
                if not user.is_admin:
                    raise InvalidInput("project: a token is for one of your projects", field="project")
                role = None
            else:
                project_id = s.scalar(select(Project.id).where(Project.name == project))
                owner_role = dict(_roles(s, user_id)).get(project)
                if project_id is None or (owner_role is None and not user.is_admin):
                    raise NotFound(f"no project named {project!r}")
                role = check_role(role or owner_role or "viewer")
                if not user.is_admin and role_rank(role) > role_rank(owner_role):
                    raise InvalidInput(f"role: at most {owner_role}, your role in {project}", field="role")
            if expires_in_days is None and not user.is_admin:
                raise InvalidInput("expires_in_days: tokens of non-administrators expire", field="expires_in_days")
            expires_at = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days is not None else None
            if caller is not None and caller.via == "token":
                if clamp_to_caller and caller.token_expires_at is not None:
                    expires_at = min(expires_at or caller.token_expires_at, caller.token_expires_at)
                _within_token(caller, project, role, expires_at)
            row = ApiToken(name=name, token_hash=token_digest(token), prefix=token[:10], user_id=user_id,
                           project_id=project_id, role=role, expires_at=expires_at,
                           scopes=",".join(sorted(set(scopes))) if scopes is not None else None)
            s.add(row)
            s.flush()
            return row.id, token

    def known_token(self, token: str) -> Principal | None:
        """The token's principal when it is in memory and needs no database write: callable on the event loop."""
        digest = token_digest(token)
        principal = self._cached(digest)
        if principal is not None:
            with self._lock:
                if time.monotonic() - self._touched.get(digest, -_TOUCH_S) >= _TOUCH_S:
                    return None  # last_used_at is due: from_token (in a thread) writes it
        return principal

    def known_session(self, cookie: str) -> Principal | None:
        """The session's principal when it is in memory: callable on the event loop."""
        return self._cached(token_digest(cookie))

    def from_token(self, token: str, *, fresh: bool = False) -> Principal | None:
        """The token's caller; `fresh`: read the database even when remembered (a re-check)."""
        digest = token_digest(token)
        principal = self._caller(digest, fresh, self._token_reader(ApiToken.token_hash == digest))
        if principal is None:
            return None
        now = time.monotonic()
        with self._lock:
            due = now - self._touched.get(digest, -_TOUCH_S) >= _TOUCH_S
            if due:
                self._touched[digest] = now
        if due:
            with self.db.begin() as s:
                s.execute(update(ApiToken).where(ApiToken.token_hash == digest).values(last_used_at=utcnow()))
        return principal

    def _token_reader(self, which: ColumnElement[bool]
                      ) -> Callable[[Session], tuple[Principal, dt.datetime | None] | None]:
        def read(s: Session) -> tuple[Principal, dt.datetime | None] | None:
            row = s.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(which)).first()
            if row is None:
                return None
            api_token, user = row
            if user.disabled or api_token.revoked_at is not None or (
                    api_token.expires_at is not None and api_token.expires_at < utcnow()):
                return None
            project = s.scalar(select(Project.name).where(Project.id == api_token.project_id)) \
                if api_token.project_id is not None else None
            return Principal(user.id, user.username, user.is_admin, "token", None, _roles(s, user.id),
                             token_project=project, token_role=api_token.role, token_id=api_token.id,
                             token_expires_at=api_token.expires_at,
                             token_scopes=tuple(api_token.scopes.split(",")) if api_token.scopes else None
                             ), api_token.expires_at

        return read

    def token_refusal(self, token: str) -> str | None:
        """Why a token that from_token refused is refused, in words its holder can act on ("... expired at
        ..."); None for a token this server never issued (nothing to say about it)."""
        with self.db() as s:
            row = s.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                            .where(ApiToken.token_hash == token_digest(token))).first()
        if row is None:
            return None
        api_token, user = row
        if api_token.revoked_at is not None:
            return f"API token {api_token.name!r} was revoked at {_iso(api_token.revoked_at)}: make a new one"
        if api_token.expires_at is not None and api_token.expires_at < utcnow():
            return f"API token {api_token.name!r} expired at {_iso(api_token.expires_at)}: make a new one"
        if user.disabled:
            return f"the account {user.username!r} of API token {api_token.name!r} is disabled"
        return None

    def list_tokens(self, user_id: int, *, only_id: int | None = None) -> list[dict[str, object]]:
        """The user's tokens; `only_id`: just that one (what a token sees of its owner's tokens: itself)."""
        query = select(ApiToken, Project.name).outerjoin(Project, Project.id == ApiToken.project_id) \
            .where(ApiToken.user_id == user_id).order_by(ApiToken.id)
        if only_id is not None:
            query = query.where(ApiToken.id == only_id)
        with self.db() as s:
            rows = s.execute(query).all()
            return [{"id": r.id, "name": r.name, "prefix": r.prefix, "project": project, "role": r.role,
                     "created_at": _iso(r.created_at), "last_used_at": _iso(r.last_used_at),
                     "expires_at": _iso(r.expires_at), "revoked_at": _iso(r.revoked_at),
                     "scopes": r.scopes.split(",") if r.scopes else None} for r, project in rows]

    def delete_token(self, user_id: int, token_id: int, *, only_id: int | None = None) -> None:
        """Revoke a token: it stops working at once and stays listed as revoked. `only_id`: the one token
        the caller may revoke (a token revokes itself, never its owner's other tokens)."""
        if only_id is not None and token_id != only_id:
            raise NotFound(f"no API token with id {token_id}")
        with self.db.begin() as s:
            revoked = s.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id,
                                                       ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
            if affected(revoked) == 0:
                raise NotFound(f"no API token with id {token_id}")
        self._forget_all()


def _revoke_all_tokens(s: Session, user_id: int) -> int:
    """Revoke the user's live tokens (a new password: whoever had the old one may have made some)."""
    return int(affected(s.execute(update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                                  .values(revoked_at=utcnow()))) or 0)


def _within_token(caller: Principal, project: str | None, role: str | None, expires_at: dt.datetime | None) -> None:
    """Refuse a token that would reach further than the token asking for it (InvalidInput naming the field)."""
    if caller.token_project is not None and project != caller.token_project:
        raise InvalidInput(f"project: a token for {caller.token_project} creates tokens for {caller.token_project} "
                           "only", field="project")
    if not caller.admin:
        mine = caller.role_in(project)
        if role is None or role_rank(role) > role_rank(mine):
            raise InvalidInput(f"role: at most {mine}, the role of the token making it", field="role")
    if caller.token_expires_at is not None and (expires_at is None or expires_at > caller.token_expires_at):
        raise InvalidInput(f"expires_in_days: at most until {_iso(caller.token_expires_at)}, when the token making "
                           "it expires", field="expires_in_days")


def _roles(s: object, user_id: int) -> tuple[tuple[str, str], ...]:
    rows = s.execute(select(Project.name, Membership.role)  # type: ignore[attr-defined]
                     .join(Project, Project.id == Membership.project_id)
                     .where(Membership.user_id == user_id).order_by(Project.name)).all()
    return tuple((p, r) for p, r in rows if r in ROLES)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    # Made on first use, not at import: an Argon2 hash costs every CLI command that opens the
    # database (`vmdeck create` among them) a tenth of a second, and only a sign-in needs it.
    return _hasher.hash("vmdeck-timing-equaliser")


def ensure_admin(accounts: Accounts, password: str | None) -> tuple[bool, str | None]:
    """While there is no administrator, create "admin": (created, the one-time password when generated here).

    Counting administrators, not users: root may have added tenants with `vmdeck user add` before the
    first `vmdeck serve`, and the server still needs someone who can manage it.
    """
    if accounts.count_users(admins_only=True) > 0:
        return False, None
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    accounts.create_user("admin", password, is_admin=True)
    return True, password if generated else None


