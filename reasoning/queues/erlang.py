"""The Erlang C (M/M/c) queue: probability of waiting, mean wait, queue length, staffing.

An M/M/c queue has Poisson arrivals at rate λ, exponential service at rate μ per server, ``c``
identical servers and an unlimited first-come-first-served queue. With offered load
``a = λ/μ`` and utilisation ``ρ = a/c < 1``:

* Erlang B, by the recursion ``B(0) = 1``, ``B(k) = a·B(k-1) / (k + a·B(k-1))``;
* Erlang C, the probability an arrival waits, ``C = B(c) / (1 - ρ·(1 - B(c)))``;
* mean wait in queue ``W_q = C / (cμ - λ)``; mean queue length ``L_q = λ·W_q`` (Little);
* waiting-time distribution ``P(W_q <= t) = 1 - C·exp(-(cμ - λ)·t)``.

Sources: A. K. Erlang, "Solution of some problems in the theory of probabilities of
significance in automatic telephone exchanges", *Post Office Electrical Engineers' Journal*
10 (1917); D. Gross, J. F. Shortle, J. M. Thompson, C. M. Harris, *Fundamentals of Queueing
Theory*, 4th ed., Wiley 2008, §2.3 (M/M/c: ``C(c, r)``, ``W_q``, ``L_q``, ``W_q(t)``);
F. S. Hillier, G. J. Lieberman, *Introduction to Operations Research*, ch. "Queueing Theory",
M/M/s model; the relation of C to B: D. L. Jagerman, "Some properties of the Erlang loss
function", *Bell System Technical Journal* 53(3), 1974, which also shows the recursion is
numerically stable (every term lies in [0, 1], so there is no factorial to overflow and the
cost is O(c): a few milliseconds for thousands of servers).

Why not a library: the maintained Python package with an Erlang C (``pyworkforce``) wants
Python >= 3.12 in its current release and drags in Google OR-Tools (tens of MB, its own
protobuf pin) for its scheduling half; its ``ErlangC`` is call-centre shaped (transactions per
interval, handle time, shrinkage) rather than rates, and it reports nothing for ρ >= 1. The
formula is a dozen lines, is core to what HealthOS decides, and is tested here against
published values and against ``ciw`` simulation (``tests/reasoning/test_queues_erlang.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reasoning.queues.errors import (
    QueueInputError,
    check_count,
    check_nonnegative,
    check_positive,
    check_share,
)

__all__ = ["ErlangCResult", "erlang_b", "erlang_c", "smallest_servers"]


def _erlang_b_upto(load: float, servers: int) -> float:
    """Erlang B blocking probability ``B(servers, load)`` by the stable recursion."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_b(offered_load: float, servers: int) -> float:
    """Return the Erlang B blocking probability of an M/M/c/c loss system.

    Parameters
    ----------
    offered_load : float
        ``a = λ/μ`` in erlangs, ``>= 0``.
    servers : int
        ``c >= 1``.

    Returns
    -------
    float
        ``B(c, a)`` in ``[0, 1]``, by the recursion ``B(k) = a·B(k-1) / (k + a·B(k-1))``
        (Jagerman 1974; numerically stable for any ``c``).

    Raises
    ------
    QueueInputError
        If ``offered_load`` is negative or not finite, or ``servers`` is not an integer >= 1.
    """
    load = check_nonnegative("offered_load", offered_load)
    count = check_count("servers", servers)
    return _erlang_b_upto(load, count)


def _erlang_c_from_b(blocking: float, utilization: float) -> float:
    return blocking / (1.0 - utilization * (1.0 - blocking))


@dataclass(frozen=True)
class ErlangCResult:
    """The steady state of an M/M/c queue (see the module docstring for the formulas).

    Times are in the unit of the rates: rates per hour give waits in hours.

    Attributes
    ----------
    arrival_rate : float
        λ, arrivals per time unit.
    service_rate : float
        μ, services per time unit per server.
    servers : int
        c.
    utilization : float
        ρ = λ/(cμ); may be >= 1 (then the queue is unstable).
    stable : bool
        ``ρ < 1``: only then does a steady state exist.
    p_wait : float
        Erlang C: the probability an arrival waits; 1.0 when unstable.
    mean_wait : float
        W_q, the mean wait in queue; ``math.inf`` when unstable (never a finite number that
        would look like an answer).
    mean_queue_length : float
        L_q = λ·W_q; ``math.inf`` when unstable.
    """

    arrival_rate: float
    service_rate: float
    servers: int
    utilization: float
    stable: bool
    p_wait: float
    mean_wait: float
    mean_queue_length: float

    @property
    def offered_load(self) -> float:
        """``a = λ/μ``, the offered load in erlangs (busy servers on average)."""
        return self.arrival_rate / self.service_rate

    def wait_within(self, t: float) -> float:
        """Return ``P(W_q <= t) = 1 - C·exp(-(cμ - λ)·t)``, the share served within ``t``.

        Parameters
        ----------
        t : float
            A wait, in the rates' time unit, ``>= 0`` (``math.inf`` allowed).

        Returns
        -------
        float
            The probability in ``[0, 1]``; 0.0 when the queue is unstable (waits grow without
            bound, so the share within any finite ``t`` tends to 0).

        Raises
        ------
        QueueInputError
            If ``t`` is negative or NaN.
        """
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
            raise QueueInputError("t", t, "must be a number >= 0")
        if not self.stable:
            return 0.0
        if math.isinf(t):
            return 1.0
        decay = (self.servers * self.service_rate - self.arrival_rate) * t
        return 1.0 - self.p_wait * math.exp(-decay)


def erlang_c(arrival_rate: float, service_rate: float, servers: int) -> ErlangCResult:
    """Return the Erlang C steady state of an M/M/c queue.

    Parameters
    ----------
    arrival_rate : float
        λ, Poisson arrivals per time unit, finite and ``>= 0``.
    service_rate : float
        μ, services per time unit per server (1 / mean service time), finite and ``> 0``.
    servers : int
        c, an integer ``>= 1``.

    Returns
    -------
    ErlangCResult
        ``p_wait``, ``mean_wait`` (W_q), ``mean_queue_length`` (L_q), ``utilization``
        (ρ = λ/(cμ)) and ``stable``; with ρ >= 1 ``stable`` is False, ``p_wait`` 1.0 and the
        wait and queue length ``math.inf``.

    Raises
    ------
    QueueInputError
        (a ``ValueError``) naming the argument: a negative, NaN or infinite rate, a zero
        service rate, or servers that are not an integer >= 1.

    Notes
    -----
    Formulas and sources in the module docstring (Erlang 1917; Gross, Shortle, Thompson &
    Harris 2008 §2.3). Erlang B is computed by the stable recursion, so hundreds or
    thousands of servers cost O(c) and cannot overflow.

    Examples
    --------
    Hillier & Lieberman's County Hospital emergency room, 2 patients/h, 3 treated per doctor
    per hour, 2 doctors: ``P(wait) = 1/6``, ``W_q = 1/24`` h.

    >>> result = erlang_c(2.0, 3.0, 2)
    >>> round(result.p_wait, 6), round(result.mean_wait * 60, 3)
    (0.166667, 2.5)
    """
    lam = check_nonnegative("arrival_rate", arrival_rate)
    mu = check_positive("service_rate", service_rate)
    c = check_count("servers", servers)
    utilization = lam / (c * mu)
    if utilization >= 1.0:
        return ErlangCResult(lam, mu, c, utilization, False, 1.0, math.inf, math.inf)
    blocking = _erlang_b_upto(lam / mu, c)
    p_wait = _erlang_c_from_b(blocking, utilization)
    mean_wait = p_wait / (c * mu - lam)
    return ErlangCResult(lam, mu, c, utilization, True, p_wait, mean_wait, lam * mean_wait)


def smallest_servers(
    arrival_rate: float,
    service_rate: float,
    target_wait: float,
    *,
    within_share: float | None = None,
) -> int:
    """Return the smallest number of servers that meets a waiting-time target.

    Two kinds of target, both by Erlang C:

    * ``within_share=None``: the mean wait ``W_q <= target_wait``;
    * ``within_share=s``: the service level ``P(W_q <= target_wait) >= s``, e.g. 80 % of
      patients seen within 30 minutes.

    Parameters
    ----------
    arrival_rate : float
        λ per time unit, ``>= 0``.
    service_rate : float
        μ per time unit per server, ``> 0``.
    target_wait : float
        The target, in the rates' time unit; ``> 0`` for a mean-wait target, ``>= 0`` for a
        service-level target.
    within_share : float, optional
        The share of arrivals to be served within ``target_wait``, strictly between 0 and 1.

    Returns
    -------
    int
        The smallest ``c`` (a stable queue meeting the target); 0 when ``arrival_rate`` is 0
        (no demand needs no server).

    Raises
    ------
    QueueInputError
        On invalid rates, a negative or non-finite ``target_wait``, a zero ``target_wait``
        with a mean-wait target (W_q > 0 for any finite c), or ``within_share`` outside (0, 1).

    Notes
    -----
    Starts from the smallest stable ``c = floor(λ/μ) + 1`` and walks up, carrying the Erlang B
    recursion, so the cost is O(answer). Both criteria improve monotonically with ``c``.
    Source of the staffing rule: Gross et al. (2008) §2.3; the service-level form is the
    standard call-centre "Erlang C staffing" (e.g. G. Koole, *Call Center Optimization*,
    MG Books, 2013).
    """
    lam = check_nonnegative("arrival_rate", arrival_rate)
    mu = check_positive("service_rate", service_rate)
    target = check_nonnegative("target_wait", target_wait)
    share = None if within_share is None else check_share("within_share", within_share)
    if lam == 0:
        return 0
    if share is None and target == 0:
        raise QueueInputError(
            "target_wait", target_wait, "must be > 0 for a mean-wait target (W_q > 0 when λ > 0)"
        )
    load = lam / mu
    c = math.floor(load) + 1
    blocking = _erlang_b_upto(load, c)
    while True:
        utilization = load / c
        p_wait = _erlang_c_from_b(blocking, utilization)
        decay = c * mu - lam
        if share is None:
            if p_wait / decay <= target:
                return c
        elif 1.0 - p_wait * math.exp(-decay * target) >= share:
            return c
        c += 1
        blocking = load * blocking / (c + load * blocking)
