"""Top-up simulator: the customer's top-up screen, pricing what-ifs, and sandbox runs end to end.

Only functions: app.py registers ``render`` with st.navigation. Run as a script on its own (Streamlit's
``pages/`` folder mode), the file hands over to app.py (see ``_shared.hand_over_to_router``).
"""

from __future__ import annotations

import streamlit as st

from billing_core.core import money
from billing_core.core.emails import EMAIL_MAX_CHARS
from billing_core.core.errors import BillingError
from billing_core.orders import lifecycle as orders
from billing_core.orders.sandbox import run_sandbox_topup, sandbox_snapshot
from billing_core.payments.simulated import Outcome
from billing_core.pricing import whatif
from billing_core.pricing.catalog import Pricing, Quote, quote
from pages import _shared
from pages._shared import PageContext, plain

AMOUNT_KEY = "amount"
METHOD_KEY = "method"
CUSTOMER_KEY = "sandbox_customer"
NEW_CUSTOMER_KEY = "sandbox_new_customer"
RESULT_KEY = "sandbox_result"
FORM_VERSION_KEY = "sandbox_customer_form"
OUTCOME_LABELS = {Outcome.SUCCEED: "Succeed", Outcome.DECLINE: "Decline", Outcome.STAY_PENDING: "Stay pending"}


def render() -> None:
    ctx = _shared.page_context("simulator")
    pricing = ctx.settings.pricing()
    st.title("Top-up simulator")
    st.caption(f"Exactly what a customer sees · pricing {plain(pricing.version)} · prices in USD")

    amount_text, method, priced = _amount_and_method(pricing)
    if priced is not None:
        _quote_panel(priced, pricing)

    sandbox_tab, whatif_tab = st.tabs([":material/play_circle: Sandbox run", ":material/compare: Pricing what-if"])
    with sandbox_tab:
        _sandbox(ctx, priced)
    with whatif_tab:
        _whatif(ctx, pricing, amount_text, method)


def _choose_plan(cents: int) -> None:
    st.session_state[AMOUNT_KEY] = money.format_plain(cents)


def _amount_and_method(pricing: Pricing) -> tuple[str, str, Quote | None]:
    if AMOUNT_KEY not in st.session_state:
        default = next((p for p in pricing.plans if p.popular), pricing.plans[0])
        _choose_plan(default.amount_cents)

    st.subheader("Choose a plan")
    chosen = _typed_cents(st.session_state[AMOUNT_KEY])
    for column, plan in zip(st.columns(len(pricing.plans)), pricing.plans, strict=True):
        with column, st.container(border=True):
            st.markdown(f"**{plan.name}**" + (" :orange-badge[Most popular]" if plan.popular else ""))
            st.markdown(f"### {money.format_cents(plan.amount_cents)}")
            st.button(
                f"Choose {plan.name}",
                key=f"plan_{plan.id.value}",
                type="primary" if chosen == plan.amount_cents else "secondary",
                on_click=_choose_plan,
                args=(plan.amount_cents,),
                width="stretch",
            )

    left, right = st.columns([2, 3])
    with right:
        method = st.radio(
            "Payment method",
            [m.value for m in pricing.fees],
            key=METHOD_KEY,
            format_func=lambda m: pricing.fees[m].label,  # type: ignore[index]
            horizontal=True,
        )
    with left:
        amount_text = st.text_input(
            "Or a custom amount (USD)",
            key=AMOUNT_KEY,
            max_chars=money.AMOUNT_MAX_CHARS,
            help=f"From {money.format_cents(pricing.custom_min_cents)} to "
            f"{money.format_cents(pricing.custom_max_cents)}.",
        )
        try:
            priced = quote(amount_text, method, pricing)
        except BillingError as exc:
            st.error(plain(exc), icon=":material/error:")  # right under the field; nothing is priced or created
            priced = None
    return amount_text, method, priced


def _typed_cents(text: str) -> int | None:
    try:
        return money.parse_amount(text)
    except BillingError:
        return None


def _quote_panel(priced: Quote, pricing: Pricing) -> None:
    """The live quote; beneath each figure, the rule that produced it."""
    with st.container(border=True):
        credits, fee, total = st.columns(3)
        with credits:
            st.metric("Credits", money.format_credits(priced.credits))
            st.caption(priced.credits_rule)
        with fee:
            st.metric(f"{pricing.fees[priced.method].label} fee", money.format_cents(priced.fee_cents))
            st.caption(priced.fee_rule)
        with total:
            st.metric("Total charged", money.format_cents(priced.total_cents))
            st.caption(priced.total_rule)


def _sandbox(ctx: PageContext, priced: Quote | None) -> None:
    st.caption("Runs the real order → payment → completion flow against the simulated gateway, for a sandbox customer.")
    with ctx.database.session() as session:
        customers = {c.id: f"{c.name} <{c.email}>" for c in orders.sandbox_customers(session, ctx.actor)}

    if (new_id := st.session_state.pop(NEW_CUSTOMER_KEY, None)) is not None:
        st.session_state[CUSTOMER_KEY] = new_id
    who, outcome_column = st.columns([3, 2])
    with who:
        customer_id = st.selectbox(
            "Sandbox customer",
            list(customers),
            key=CUSTOMER_KEY,
            format_func=lambda cid: customers.get(cid, str(cid)),
            placeholder="Create a sandbox customer below",
        )
    with outcome_column:
        outcome = st.radio(
            "Payment outcome", list(Outcome), key="outcome", format_func=OUTCOME_LABELS.get, horizontal=True
        )
    _new_customer_form(ctx)

    if st.button(
        "Get Credits",
        key="get_credits",
        type="primary",
        icon=":material/bolt:",
        disabled=priced is None or customer_id is None,
    ):
        try:
            st.session_state[RESULT_KEY] = run_sandbox_topup(
                ctx.database,
                ctx.actor,
                ctx.settings,
                customer_id=customer_id,
                amount=priced.amount_cents,
                method=priced.method,
                outcome=outcome,
            )
        except BillingError as exc:
            st.error(plain(exc))
    if customer_id is not None:
        _show_customer(ctx, customer_id)


def _new_customer_form(ctx: PageContext) -> None:
    # A new form key after each creation gives empty fields (the browser keeps a form's old values).
    version = st.session_state.setdefault(FORM_VERSION_KEY, 0)
    with (
        st.expander("New sandbox customer", icon=":material/person_add:"),
        st.form(f"new_customer_{version}"),
    ):
        name = st.text_input("Name", max_chars=orders.NAME_MAX_CHARS)
        email = st.text_input("Email", max_chars=EMAIL_MAX_CHARS)
        country = st.text_input("Country (two letters)", max_chars=2)
        if st.form_submit_button("Create sandbox customer"):
            try:
                with ctx.database.session() as session:
                    customer = orders.create_customer(
                        session, ctx.actor, email=email, name=name, country=country, sandbox=True
                    )
            except BillingError as exc:
                st.error(plain(exc))
                return
            st.session_state[NEW_CUSTOMER_KEY] = customer.id
            st.session_state[FORM_VERSION_KEY] = version + 1
            st.session_state.pop(RESULT_KEY, None)
            st.rerun()


def _show_customer(ctx: PageContext, customer_id: int) -> None:
    with ctx.database.session() as session:
        snap = sandbox_snapshot(session, ctx.actor, customer_id)
    result = st.session_state.get(RESULT_KEY)
    status, balance, invoice = st.columns(3)
    balance.metric("Credits balance", money.format_credits(snap.balance))
    if result is not None and snap.orders and result.order_public_id in {o.public_id for o in snap.orders}:
        status.metric("Last run", result.status.value, help=f"Gateway: {result.gateway.state.value}")
        invoice.metric("Invoice", result.invoice_number or "—")
        st.caption(f"Order `{result.order_public_id}` · payment `{result.gateway.ref}`")
    st.markdown("**Orders**")
    st.dataframe(_shared.orders_frame(snap.orders), hide_index=True)
    st.markdown("**Ledger**")
    st.dataframe(_shared.ledger_frame(snap.ledger), hide_index=True)
    st.markdown("**Audit events**")
    st.dataframe(_shared.events_frame(snap.events), hide_index=True)


def _whatif(ctx: PageContext, current: Pricing, amount_text: str, method: str) -> None:
    st.caption("Compare the current pricing with a proposal: upload a pricing TOML file or edit the current one.")
    proposal = _shared.whatif_pricing(ctx.settings, "whatif")
    if proposal is None:
        return
    rows = whatif.compare(
        current, proposal, method, whatif.comparison_amounts(current, proposal, _typed_cents(amount_text))
    )
    st.markdown(f"**Current {plain(current.version)}** vs **what-if {plain(proposal.version)}**, paid by {method}")
    st.dataframe(_shared.whatif_frame(rows), hide_index=True)


if __name__ == "__main__":
    _shared.hand_over_to_router()
