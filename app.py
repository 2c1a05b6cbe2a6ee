"""Billing Ops router: settings, database, who is acting, and which pages they get.

Pages live in ``pages/`` as functions this file registers with ``st.navigation``; each page checks
access again itself, because Streamlit can run a file in ``pages/`` without this router.
"""

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from billing_core.access.roles import pages_for
from billing_core.core.db import describe_url
from pages import _shared, approvals, audit, credits, customers, invoices, orders, revenue, simulator

st.set_page_config(page_title="Billing Ops", page_icon=":material/account_balance_wallet:", layout="wide")

settings = _shared.settings_or_stop(alone=True)
# Who first: a stranger sees the sign-in button (or a refusal) and nothing else, not even the database.
if settings.local_mode:
    actor = _shared.identity_sidebar(settings)
elif settings.sign_in is not None:
    actor = _shared.signed_in_actor_or_stop(settings)
else:
    _shared.show_alone(_shared.refusal(_shared.NO_SIGN_IN))

try:
    database = _shared.database(settings.database_url)
except SQLAlchemyError as exc:  # the class name only: a driver's message can quote the URL
    problem = f"The database {describe_url(settings.database_url)} cannot be opened: {exc.__class__.__name__}."
    _shared.show_alone(_shared.refusal(problem, ":material/database:"))
_shared.status_sidebar(settings, database)
_shared.approvals_sidebar(actor, database)

IMPLEMENTED = {
    "simulator": st.Page(
        simulator.render, title=_shared.PAGE_TITLES["simulator"], url_path="simulator", icon=":material/calculate:"
    ),
    "revenue": st.Page(
        revenue.render, title=_shared.PAGE_TITLES["revenue"], url_path="revenue", icon=":material/monitoring:"
    ),
    "orders": st.Page(
        orders.render, title=_shared.PAGE_TITLES["orders"], url_path="orders", icon=":material/receipt_long:"
    ),
    "customers": st.Page(
        customers.render, title=_shared.PAGE_TITLES["customers"], url_path="customers", icon=":material/person_search:"
    ),
    "invoices": st.Page(
        invoices.render, title=_shared.PAGE_TITLES["invoices"], url_path="invoices", icon=":material/request_quote:"
    ),
    "audit": st.Page(audit.render, title=_shared.PAGE_TITLES["audit"], url_path="audit", icon=":material/history:"),
    "credits": st.Page(
        credits.render, title=_shared.PAGE_TITLES["credits"], url_path="credits", icon=":material/savings:"
    ),
    "approvals": st.Page(
        approvals.render, title=_shared.PAGE_TITLES["approvals"], url_path="approvals", icon=":material/approval:"
    ),
}
pages = [IMPLEMENTED[name] for name in pages_for(actor) if name in IMPLEMENTED]
if not pages:
    pages = [st.Page(_shared.no_page_yet, title="Billing Ops", url_path="home", icon=":material/home:")]
st.navigation(pages).run()
