"""The district's social network: communities, households, leaders and children's peers.

The network is generated with networkx from the run's seed (or loaded from a file) and
then held as edge arrays, so that the monthly processes can work on whole arrays
(``numpy.bincount`` over edges) instead of looping over agents. ``Network.to_graph``
gives the full networkx graph (households, leaders and children) for display or export.

Node numbering among adults: households ``0 .. H-1``, then leaders ``H .. H+L-1``.
Children are numbered separately (``0 .. n-1``) and linked to one household each and to
peers among the children of their community.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np

from . import kernels
from .parameters import ParameterError, Params


@dataclass
class Network:
    """Edge arrays and community membership of the district's network.

    Attributes:
        n_households: number of households (Family agents).
        n_leaders: number of community leaders.
        community: community of each adult node (households, then leaders).
        rural: whether each community is rural.
        src, dst: directed adult-adult ties (both directions stored).
        peer_src, peer_dst: directed child-child peer ties (both directions stored).
    """

    n_households: int
    n_leaders: int
    community: np.ndarray
    rural: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    peer_src: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    peer_dst: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    households_by_community: list[np.ndarray] = field(default_factory=list)

    @property
    def n_adults(self) -> int:
        """Households plus leaders."""
        return self.n_households + self.n_leaders

    @property
    def n_communities(self) -> int:
        """Number of communities."""
        return len(self.rural)

    def add_peers(self, children: np.ndarray, community: np.ndarray, peers_per_child: int,
                  rng: np.random.Generator) -> None:
        """Tie each new child to up to ``peers_per_child`` earlier children of its community.

        Peers are drawn uniformly (with replacement, duplicates dropped) among the
        children of the same community who arrived before the child, so a child's peers
        do not depend on who arrives later.

        Args:
            children: ids of the new children (the highest ids so far, ascending).
            community: community of every child so far (indexed by child id).
            peers_per_child: number of draws per child.
            rng: the network's random stream.
        """
        if peers_per_child == 0 or len(children) == 0:
            return
        first = int(children[0])
        if getattr(self, "_registered", -1) != first:  # (re)build from all earlier children
            self._count = np.zeros(self.n_communities, np.int64)
            self._members = np.zeros((self.n_communities, 16), np.int64)
            self._registered = 0
            if first:
                self._draw_peers(np.arange(first), community, 0, rng)
        self._draw_peers(children, community, peers_per_child, rng)

    def _draw_peers(self, children: np.ndarray, community: np.ndarray, peers_per_child: int,
                    rng: np.random.Generator | None) -> None:
        # ``self._members[c, :self._count[c]]`` are the children of community ``c`` so far,
        # by id: a new child's rank is the number of earlier children in its community.
        com = community[children]
        need = int(self._count.max()) + len(children)
        if need > self._members.shape[1]:
            grown = np.zeros((self.n_communities, max(need, 2 * self._members.shape[1])), np.int64)
            grown[:, : self._members.shape[1]] = self._members
            self._members = grown
        u = rng.random((len(children), peers_per_child)) if peers_per_child else np.empty((len(children), 0))
        src = np.empty(u.size, np.int64)
        dst = np.empty(u.size, np.int64)
        m = kernels.draw_peers(children, com, u, self._members, self._count, src, dst)
        self._registered = int(children[-1]) + 1
        if m:
            self._append_ties(src[:m], dst[:m])

    def _append_ties(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Add undirected peer ties (both directions) to growable buffers."""
        buf = getattr(self, "_peer_buffers", None)
        n = len(self.peer_src)
        if buf is None or self.peer_src.base is not buf[0] or self.peer_dst.base is not buf[1]:
            cap = max(64, 2 * n)
            buf = (np.empty(cap, np.int64), np.empty(cap, np.int64))
            buf[0][:n], buf[1][:n] = self.peer_src, self.peer_dst
        m = len(src)
        if n + 2 * m > len(buf[0]):
            cap = max(n + 2 * m, 2 * len(buf[0]))
            grown = (np.empty(cap, np.int64), np.empty(cap, np.int64))
            grown[0][:n], grown[1][:n] = buf[0][:n], buf[1][:n]
            buf = grown
        buf[0][n:n + m], buf[0][n + m:n + 2 * m] = src, dst
        buf[1][n:n + m], buf[1][n + m:n + 2 * m] = dst, src
        pairs = self.peer_pairs()  # the ties so far, once each (rebuilt if out of step)
        self._peer_buffers = buf
        self.peer_src, self.peer_dst = buf[0][: n + 2 * m], buf[1][: n + 2 * m]
        k = len(pairs[0])
        if k + m > len(self._pair_buffers[0]):
            cap = max(k + m, 2 * len(self._pair_buffers[0]))
            grown = (np.empty(cap, np.int32), np.empty(cap, np.int32))
            grown[0][:k], grown[1][:k] = pairs
            self._pair_buffers = grown
        self._pair_buffers[0][k:k + m], self._pair_buffers[1][k:k + m] = src, dst
        self._pairs = (self._pair_buffers[0][: k + m], self._pair_buffers[1][: k + m])

    def peer_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Each peer tie once, as two int32 arrays (for loops over ties)."""
        pairs = getattr(self, "_pairs", None)
        if pairs is None or 2 * len(pairs[0]) != len(self.peer_src):
            once = self.peer_src < self.peer_dst
            a, b = self.peer_src[once].astype(np.int32), self.peer_dst[once].astype(np.int32)
            self._pair_buffers = (np.empty(max(64, 2 * len(a)), np.int32),
                                  np.empty(max(64, 2 * len(a)), np.int32))
            self._pair_buffers[0][: len(a)], self._pair_buffers[1][: len(a)] = a, b
            pairs = self._pairs = (self._pair_buffers[0][: len(a)], self._pair_buffers[1][: len(a)])
        return pairs

    def to_graph(self, child_household: np.ndarray | None = None) -> nx.Graph:
        """The whole network as a networkx graph with ``kind`` and ``community`` attributes.

        Args:
            child_household: household of each child; children are added as nodes
                ``("child", i)`` when given.
        """
        g = nx.Graph()
        for node in range(self.n_adults):
            kind = "family" if node < self.n_households else "leader"
            com = int(self.community[node])
            g.add_node(node, kind=kind, community=com, rural=bool(self.rural[com]))
        g.add_edges_from(zip(self.src.tolist(), self.dst.tolist(), strict=True))
        if child_household is not None:
            for i, h in enumerate(child_household.tolist()):
                com = int(self.community[h])
                g.add_node(("child", i), kind="child", community=com,
                           rural=bool(self.rural[com]))
                g.add_edge(("child", i), h)
            g.add_edges_from((("child", a), ("child", b)) for a, b in
                             zip(self.peer_src.tolist(), self.peer_dst.tolist(), strict=True))
        return g


def gnp_edges(n: int, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The edges ``(a, b)``, ``a > b``, of an Erdős–Rényi graph G(n, p), sampled exactly.

    The number of edges is Binomial(n(n-1)/2, p) and, given that number, the edges are a
    uniform sample without replacement of the n(n-1)/2 node pairs: together, each pair is
    present independently with probability ``p``, as in G(n, p). This does in a few
    numpy calls what networkx's ``fast_gnp_random_graph`` does in a Python loop (29 ms of
    the 46 ms construction of a 1,000-child model; see ``docs/performance.md``).
    """
    pairs = n * (n - 1) // 2
    if pairs == 0 or p <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    m = int(rng.binomial(pairs, min(p, 1.0)))
    k = np.sort(rng.choice(pairs, size=m, replace=False)).astype(np.int64)
    # Pair index k -> (a, b) with a > b, k = a(a-1)/2 + b; the float root is corrected
    # by one where rounding put it on the wrong side.
    a = ((1.0 + np.sqrt(1.0 + 8.0 * k)) // 2).astype(np.int64)
    a -= a * (a - 1) // 2 > k
    a += (a + 1) * a // 2 <= k
    return a, k - a * (a - 1) // 2


def _symmetric(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = src != dst
    src, dst = src[keep], dst[keep]
    lo, hi = np.minimum(src, dst).astype(np.int64), np.maximum(src, dst).astype(np.int64)
    n = int(hi.max()) + 1 if len(hi) else 1
    key = np.unique(lo * n + hi)  # each undirected tie once, sorted
    lo, hi = key // n, key % n
    return np.concatenate([lo, hi]), np.concatenate([hi, lo])


def build_network(params: Params, rng: np.random.Generator) -> Network:
    """Generate the district's network from the parameters and the run's network stream.

    Communities are rural or urban: rural ones have ``rural_size_ratio`` times the
    households of an urban one and ``rural_degree`` ties per household instead of
    ``urban_degree``. Household ties inside a community are an Erdős–Rényi graph
    G(n, p) (:func:`gnp_edges`); each leader is tied to a share
    ``leader_reach`` of the community's households (hubs); a share
    ``between_community_share`` of further ties joins random households of different
    communities.
    """
    if params.network_file:
        return load_network(Path(params.network_file), params, rng)
    n_com = params.n_communities
    n_rural = int(round(params.rural_share * n_com))
    rural = np.zeros(n_com, bool)
    rural[rng.permutation(n_com)[:n_rural]] = True
    n_households = max(int(round(params.n_children * params.households_per_child)), 2 * n_com)
    size_weight = np.where(rural, params.rural_size_ratio, 1.0)
    sizes = np.maximum(1, np.floor(n_households * size_weight / size_weight.sum()).astype(int))
    sizes[np.argmax(sizes)] += n_households - sizes.sum()
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    community = np.repeat(np.arange(n_com), sizes)
    src_parts, dst_parts = [], []
    for c in range(n_com):
        n_c = int(sizes[c])
        if n_c < 2:
            continue
        degree = params.rural_degree if rural[c] else params.urban_degree
        p = min(1.0, degree / (n_c - 1))
        a, b = gnp_edges(n_c, p, rng)
        if len(a):
            src_parts.append(a + starts[c])
            dst_parts.append(b + starts[c])
    # Ties between communities.
    n_within = sum(len(s) for s in src_parts)
    n_between = int(round(params.between_community_share * n_within))
    if n_between and n_com > 1:
        a = rng.integers(0, n_households, n_between)
        b = rng.integers(0, n_households, n_between)
        cross = community[a] != community[b]
        src_parts.append(a[cross])
        dst_parts.append(b[cross])
    # Leaders as hubs.
    n_leaders = params.leaders_per_community * n_com
    leader_community = np.repeat(np.arange(n_com), params.leaders_per_community)
    for j, c in enumerate(leader_community.tolist()):
        k = int(round(params.leader_reach * sizes[c]))
        if k:
            members = starts[c] + rng.choice(int(sizes[c]), size=k, replace=False)
            src_parts.append(np.full(k, n_households + j, np.int64))
            dst_parts.append(members.astype(np.int64))
    src = np.concatenate(src_parts) if src_parts else np.empty(0, np.int64)
    dst = np.concatenate(dst_parts) if dst_parts else np.empty(0, np.int64)
    src, dst = _symmetric(src, dst)
    net = Network(n_households, n_leaders, np.concatenate([community, leader_community]),
                  rural, src, dst)
    net.households_by_community = [np.arange(starts[c], starts[c] + sizes[c]) for c in range(n_com)]
    return net


def read_graph_file(path: Path) -> nx.Graph:
    """Read an edge list or GraphML file, with a one-line error for user mistakes."""
    if not path.exists():
        raise ParameterError(f"network_file: {path} does not exist; give the path of an "
                             "edge-list or GraphML file, or leave it empty")
    try:
        if path.suffix.lower() == ".graphml":
            return nx.Graph(nx.read_graphml(path))
        delimiter = "," if path.suffix.lower() == ".csv" else None
        return nx.read_edgelist(path, delimiter=delimiter, comments="#", data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a user-file problem
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(f"network_file: cannot read {path} ({first}); expected an edge "
                             "list (two node names per line) or a GraphML file") from None


def load_network(path: Path, params: Params, rng: np.random.Generator) -> Network:
    """Build the network from a file of households and leaders.

    Node attributes used when present (GraphML): ``kind`` (``leader`` marks a community
    leader, anything else a household), ``community`` (an integer or a label) and
    ``rural`` (true/false). Without ``community``, communities are found with
    networkx's seeded Louvain method; without leaders, the ``leaders_per_community``
    best-connected nodes of each community are leaders; without ``rural``, the smaller
    half of the communities are rural. Children are generated and attached to households.
    """
    g = read_graph_file(path)
    if g.number_of_nodes() < 2:
        raise ParameterError(f"network_file: {path} has fewer than 2 nodes; give a network "
                             "of households")
    nodes = list(g.nodes())
    attrs = nx.get_node_attributes(g, "community")
    if len(attrs) == len(nodes):
        labels = sorted({str(v) for v in attrs.values()})
        index = {lab: i for i, lab in enumerate(labels)}
        com_of = {n: index[str(attrs[n])] for n in nodes}
    else:
        parts = nx.community.louvain_communities(g, seed=int(rng.integers(2**31)))
        parts = sorted(parts, key=lambda s: (-len(s), min(map(str, s))))
        com_of = {n: i for i, part in enumerate(parts) for n in part}
    n_com = max(com_of.values()) + 1
    kinds = nx.get_node_attributes(g, "kind")
    is_leader = {n: str(kinds.get(n, "")).lower() == "leader" for n in nodes}
    if not any(is_leader.values()) and params.leaders_per_community:
        for c in range(n_com):
            members = [n for n in nodes if com_of[n] == c]
            members.sort(key=lambda n: (-g.degree(n), str(n)))
            for n in members[: min(params.leaders_per_community, max(0, len(members) - 1))]:
                is_leader[n] = True
    households = [n for n in nodes if not is_leader[n]]
    leaders = [n for n in nodes if is_leader[n]]
    order = {n: i for i, n in enumerate(households + leaders)}
    community = np.array([com_of[n] for n in households + leaders], np.int64)
    sizes = np.bincount(community[: len(households)], minlength=n_com)
    rural_attr = nx.get_node_attributes(g, "rural")
    rural = np.zeros(n_com, bool)
    if rural_attr:
        for n, v in rural_attr.items():
            rural[com_of[n]] = str(v).lower() in ("true", "1", "yes")
    else:
        rural[sizes < np.median(sizes)] = True
    if len(households) == 0:
        raise ParameterError(f"network_file: {path} has no households (every node is a leader)")
    edges = np.array([(order[a], order[b]) for a, b in g.edges()], np.int64).reshape(-1, 2)
    src, dst = _symmetric(edges[:, 0], edges[:, 1])
    net = Network(len(households), len(leaders), community, rural, src, dst)
    hcom = community[: len(households)]
    net.households_by_community = [np.flatnonzero(hcom == c) for c in range(n_com)]
    return net
