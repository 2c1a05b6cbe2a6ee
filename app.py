"""Billing Ops router: settings, database, who is acting, and which pages they get.

Pages live in ``pages/`` as functions this file registers with ``st.navigation``, one for each entry of
the page registry (``billing_core.access.roles.PAGES``) the actor may open; each page checks access
again itself, because Streamlit can run a file in ``pages/`` without this router.
"""

import importlib
from functools import partial

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from billing_core.access.roles import PAGES, pages_for
from billing_core.core.db import describe_url
from pages import _guard

st.set_page_config(page_title="Billing Ops", page_icon=":material/account_balance_wallet:", layout="wide")

settings = _guard.settings_or_stop(alone=True)
# Who first: a stranger sees the sign-in button (or a refusal) and nothing else, not even the database.
if settings.local_mode:
    actor = _guard.identity_sidebar(settings)
elif settings.sign_in is not None:
    actor = _guard.signed_in_actor_or_stop(settings)
else:
    _guard.show_alone(_guard.refusal(_guard.NO_SIGN_IN))

try:
    database = _guard.database(settings.database_url)
except SQLAlchemyError as exc:  # the class name only: a driver's message can quote the URL
    problem = f"The database {describe_url(settings.database_url)} cannot be opened: {exc.__class__.__name__}."
    _guard.show_alone(_guard.refusal(problem, ":material/database:"))
_guard.status_sidebar(settings, database)
_guard.approvals_sidebar(actor, database)


def registered(name: str) -> st.Page:
    """The page ``name`` of the registry: pages/<name>.py's ``render`` at /<name>."""
    entry = PAGES[name]
    render = importlib.import_module(f"pages.{name}").render
    return st.Page(render, title=entry.title, url_path=name, icon=entry.icon)


allowed = pages_for(actor)
pages = [registered(name) for name in allowed]
if pages:
    # Streamlit serves its default page at "/" only, never at its own url_path: were a role's first page
    # the default, a link to it (/orders?order=…) would be "page not found". So the default is a hidden
    # start page that opens the role's first page, and every page keeps its own address for every role:
    # a page the role may not open answers at its address with why (hidden, titled as a refusal).
    home = st.Page(
        partial(_guard.open_first, pages[0]), title="Billing Ops", url_path="home", default=True, visibility="hidden"
    )
    refused = [
        st.Page(
            partial(_guard.refused_page, actor, name, pages[0]),
            title=_guard.REFUSED_TITLE,
            url_path=name,
            visibility="hidden",
        )
        for name in PAGES
        if name not in allowed
    ]
    st.navigation([home, *pages, *refused]).run()
else:
    st.navigation([st.Page(_guard.no_page_yet, title="Billing Ops", url_path="home", icon=":material/home:")]).run()
