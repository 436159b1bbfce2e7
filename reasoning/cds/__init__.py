"""CDS Hooks 2.0 for HealthOS: suggestions as cards, the hooks' checks, feedback.

* :mod:`reasoning.cds.cards` — a suggestion as a card (and a card uuid back to it);
* :mod:`reasoning.cds.prefetch` — reading a call's context and prefetch safely; 412 when
  neither the prefetch nor the record has what a service needs;
* :mod:`reasoning.cds.orders` — ``order-sign`` checks of draft orders;
* :mod:`reasoning.cds.services` — discovery and the cards of each service;
* :mod:`reasoning.cds.feedback` — feedback into the suggestion lifecycle.

The HTTP side is :mod:`serving.routers.cds_hooks`; ``docs/cds-hooks.md`` describes both.
"""
