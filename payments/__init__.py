"""Benefit payments (ICD §5.10, §5.11; DOMAIN §6, §7): the model every payments module
shares.

**A DISB batch** (``disb_batch``, one per bureau DISB file accepted) goes
``awaiting_funds`` → ``funded`` (its STMT ``DISB/<batch_no>`` credits reach its header
TOTAL_AMOUNT: the hub lines are posted and the partner lines forwarded) → ``answered``
(DISBRSP written: every line has its outcome). A batch still short of its total at the
funding cut-off (the end of its business date) becomes ``unfunded``: ``301`` on every line,
nothing posted to customers, what was received returned, and R03 until resolved by hand.
``pay_before_funding`` (default no) posts at intake instead.

**A DISB line** (``disb_line``): ``result`` NULL while it waits (for funding, or for a
partner bank: ``partner``, ``partner_key`` the hub's own pay_no sent to the bank), then
``0000`` credited (``credited_fen``, ``posted_time``, ``bank_ref``) or a §6 code. Lines
failing the line or account checks at intake get their code at once (``209`` a pay_no this
bureau used before, ``208``, E117, ``103``–``106``, E116); their amount (0 when it was not
a valid amount) counts as failed. ``answered_date`` is the business date it got its result.

**Ledger legs** (DOMAIN §6; accounts: ``SETTLEMENT``, ``CLEARING:<bureau>``,
``RETURNS:<bureau>``, ``DUE:<bank>``, customers by PAN; idempotency keys in brackets):

| event | debit | credit | key |
|---|---|---|---|
| STMT credit ``DISB/<batch>`` | SETTLEMENT | CLEARING:bureau | ``stmt:<sender>:<txn_ref>`` |
| line credited at the hub | CLEARING:bureau | PAN | ``disb:<bureau>:<pay_no>`` |
| line credited at a partner (its DISBRSP) | CLEARING:bureau | DUE:bank | ``ptn:<bureau>:<pay_no>`` |
| line failed (funded batch) | CLEARING:bureau | RETURNS:bureau | ``fail:<bureau>:<batch>:<seq>`` |
| funds of an unfunded batch, at the cut-off | CLEARING:bureau | RETURNS:bureau | ``unfunded:<bureau>:<batch>`` |
| STMT credit ``DISB/<batch>`` after its cut-off | CLEARING:bureau | RETURNS:bureau | ``unfunded:stmt:<sender>:<txn_ref>`` |
| STMT debit ``RET/<batch>`` | RETURNS:bureau | SETTLEMENT | ``stmt:<sender>:<txn_ref>`` |
| STMT debit ``PTN/<bank>/<batch>`` | DUE:bank | SETTLEMENT | ``stmt:<sender>:<txn_ref>`` |

A repeated ``pay_no`` (``209``) is never credited; its amount is returned with the
batch's other failures. **A statement line** (``statement_line``) is posted once per
(sender, txn_ref) whatever file brings it; its ``kind`` is ``DISB``, ``RET``, ``PTN`` or
``UNIDENTIFIED`` (memo not one of the three forms, or naming a batch the hub does not
know: R09, in the hub's own reports only).
"""
