"""Tests for ntknb.schema (parameter schemas)."""

import dataclasses

import pytest

from ntknb import schema


@dataclasses.dataclass(frozen=True)
class Toy(schema.Params):
    n: int = schema.param(schema.Int(min=2))
    k: int = schema.param(schema.Int(min=1, max=schema.Ref("n", -1)))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    name: str = schema.param(schema.Choice(["a", "b"]))
    flag: bool = schema.param(schema.Bool())
    steps: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("n")), max_length=3, increasing=True))

    def check(self):
        if self.name == "b" and self.flag:
            raise ValueError("parameter 'flag' must be False with name 'b'")


GOOD = dict(n=5, k=4, eps=0.5, name="a", flag=True, steps=(1, 3))


def test_valid_values_are_normalised_and_frozen():
    p = Toy.from_values(dict(GOOD, n=5.0))
    assert p.n == 5 and isinstance(p.n, int) and p.steps == [1, 3]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.n = 3
    assert Toy.names() == list(GOOD)
    assert p.as_dict() == dict(GOOD, steps=[1, 3])


@pytest.mark.parametrize("change, message", [
    (dict(n=1), r"'n' must be an integer >= 2, got 1"),
    (dict(k=5), r"'k' must be an integer in \[1, 4\], got 5"),  # bound from n
    (dict(eps=0.0), r"'eps' must be a number in \(0.0, 1.0\], got 0.0"),
    (dict(eps=True), r"'eps'"),
    (dict(name="c"), r"'name' must be one of \['a', 'b'\]"),
    (dict(flag=1), r"'flag' must be True or False"),
    (dict(steps=[3, 1]), r"'steps' must be strictly increasing"),
    (dict(steps=[1, 6]), r"'steps\[1\]' must be an integer in \[1, 5\]"),
    (dict(steps=[1, 2, 3, 4]), r"'steps' must have at most 3 items"),
    (dict(name="b"), r"'flag' must be False"),  # cross-parameter rule
])
def test_each_rule_names_the_parameter_and_its_range(change, message):
    with pytest.raises(ValueError, match=message):
        Toy.from_values(dict(GOOD, **change))


def test_unknown_and_missing_names():
    with pytest.raises(ValueError, match=r"\['m'\] unknown"):
        Toy.from_values(dict(GOOD, m=1))
    with pytest.raises(ValueError, match=r"\['flag'\] missing"):
        Toy.from_values({k: v for k, v in GOOD.items() if k != "flag"})
    with pytest.raises(ValueError, match="not defined"):
        Toy.from_namespace({"n": 5})


def test_from_namespace_ignores_other_names_and_rules_describe():
    assert Toy.from_namespace(dict(GOOD, other=object())).k == 4
    rules = Toy.rules()
    assert rules["k"] == "integer in [1, n - 1]" and rules["eps"] == "number in (0.0, 1.0]"
    assert rules["name"] == "one of 'a', 'b'" and rules["steps"].startswith("list of integer in [1, n]")


@pytest.mark.parametrize("notebook", sorted(__import__("ntknb.chapters", fromlist=["CHAPTERS"]).CHAPTERS))
def test_every_chapter_schema_bounds_its_seed_below_2_to_the_32(notebook):
    """Seeds of 2**32 or more would collide with small ones in 32-bit PRNG keys."""
    from ntknb.book.params import load_notebook, notebook_parameters, resolve_notebook
    from ntknb.chapters import check_parameters

    params = notebook_parameters(load_notebook(resolve_notebook(notebook)))
    values = {name: p.default for name, p in params.items()}
    check_parameters(notebook, values)  # the defaults pass
    with pytest.raises(ValueError, match="seed"):
        check_parameters(notebook, dict(values, seed=2**32))


@dataclasses.dataclass(frozen=True)
class Seeded(schema.SeededParams):
    SEED_PURPOSES = {"probe": schema.DerivedSeed(1000), "subsample": schema.DerivedSeed(10**6, per_replica=True)}
    seed: int = schema.seed_param()
    n_seeds: int = schema.seed_count_param(max=5)
    n: int = schema.param(schema.Int(min=1))


def test_seeded_params_give_the_replica_seeds_and_the_named_derived_seeds():
    p = Seeded(seed=7, n_seeds=3, n=1)
    assert p.seeds == [7, 8, 9] and Seeded.names() == ["seed", "n_seeds", "n"]
    assert p.seed_for("probe") == 1007 and [p.seed_for("subsample", s) for s in p.seeds] == [10**6 + 7, 10**6 + 8,
                                                                                              10**6 + 9]
    assert Seeded.rules()["seed"] == "integer in [0, 4294967295]" and Seeded.rules()["n_seeds"] == "integer in [1, 5]"
    assert p.derived_seeds() == {"the probe seed (seed + 1000)": 1007,
                                 "the subsample seeds (seed + n_seeds - 1 + 10**6)": 10**6 + 9}


@pytest.mark.parametrize("purpose, replica, message", [
    ("probes", None, r"seed purpose 'probes' unknown: .* \['probe', 'subsample'\]"),
    ("probe", 8, r"'probe' has one seed .* got replica = 8"),
    ("subsample", None, r"'subsample' has one seed per replica: .* \[7, 8, 9\], got None"),
    ("subsample", 10, r"one of the seeds \[7, 8, 9\], got 10"),
])
def test_seed_for_refuses_an_unknown_purpose_or_a_wrong_replica(purpose, replica, message):
    with pytest.raises(ValueError, match=message):
        Seeded(seed=7, n_seeds=3, n=1).seed_for(purpose, replica)


def test_seeded_params_bound_the_seed_by_every_derived_seed_and_the_count():
    Seeded(seed=2**32 - 1 - 10**6 - 2, n_seeds=3, n=1)
    with pytest.raises(ValueError, match=r"'seed' must be an integer in \[0, 4293967293\] here: the subsample seeds"):
        Seeded(seed=2**32 - 10**6 - 2, n_seeds=3, n=1)
    with pytest.raises(ValueError, match=r"'n_seeds' must be an integer in \[1, 5\], got 6"):
        Seeded(seed=0, n_seeds=6, n=1)
    with pytest.raises(ValueError, match=r"'seed' must be an integer in \[0, 4294967295\]"):
        Seeded(seed=-1, n_seeds=1, n=1)


def test_seeded_params_need_seed_and_n_seeds_and_a_positive_offset():
    @dataclasses.dataclass(frozen=True)
    class NoCount(schema.SeededParams):
        seed: int = schema.seed_param()

    with pytest.raises(RuntimeError, match="needs the fields 'seed' and 'n_seeds'"):
        NoCount(seed=0)
    with pytest.raises(ValueError, match="'offset'"):
        schema.DerivedSeed(0)
    assert schema.DerivedSeed(500000, per_replica=True).formula() == "seed + n_seeds - 1 + 500000"
