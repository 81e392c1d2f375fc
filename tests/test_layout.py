"""The layout's rules, read from the source (ast; nothing is imported or executed):

- imports point one way: spaces <- methods <- benchmark <- analysis (a module imports only its
  own layer or lower ones), so nothing in methods/ or spaces/ imports benchmark/ or analysis/;
- no import cycles between the suite's modules (function-level imports included);
- no folder holds more than 15 modules;
- the harness never branches on a space or benchmark name (it asks the space).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"spaces": 0, "methods": 1, "benchmark": 2, "analysis": 3}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for top in LAYERS for p in sorted((REPO / top).rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The suite's modules that `name` imports anywhere in its file."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import a.b.c` of a non-module attribute: its module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_imports_point_one_way(graph):
    wrong = [f"{a} imports {b}" for a, deps in graph.items() for b in deps
             if LAYERS[b.split(".")[0]] > LAYERS[a.split(".")[0]]]
    assert not wrong, "imports against spaces <- methods <- benchmark <- analysis:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(graph):
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_layer_rule_would_catch_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from benchmark.harness.config import resolve_config\n")
    deps = _imports("methods.m", bad, _modules())
    assert "benchmark.harness.config" in deps  # a function-level import counts too


def test_no_folder_holds_more_than_15_modules():
    crowded = {str(d.relative_to(REPO)): n for top in LAYERS for d in [REPO / top, *(REPO / top).rglob("*")]
               if d.is_dir() and d.name != "__pycache__"
               and (n := len([p for p in d.glob("*.py") if p.name != "__init__.py"])) > 15}
    assert not crowded, crowded


def test_harness_never_compares_with_a_space_or_benchmark_name():
    import spaces
    src = (REPO / "spaces" / "__init__.py").read_text()
    names = set(ast.literal_eval(src[src.index("{", src.index("_SPACES")):src.index("}") + 1]))
    scorer_src = (REPO / "benchmark" / "harness" / "scoring.py").read_text()
    kinds: set[str] = set()
    tree = ast.parse(scorer_src)
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SCORERS":
            kinds = {k.value for k in node.value.keys}
    assert kinds and names == set(spaces.available())
    offenders = []
    for path in sorted((REPO / "benchmark" / "harness").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                hits = [c for c in consts if c in names | kinds]
                if hits:
                    offenders.append(f"{path.name}:{node.lineno} compares with {hits}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "startswith":
                consts = [c.value for c in node.args if isinstance(c, ast.Constant)]
                if any(isinstance(c, str) and c and any(n.startswith(c) for n in names) for c in consts):
                    offenders.append(f"{path.name}:{node.lineno} tests a space-name prefix")
    assert not offenders, offenders


def test_each_space_family_is_one_package():
    """spaces/ holds the registry, the shared base and one package per family; no flat
    `<family>_<part>.py` modules (the one module file left, nb101.py, is the alias below)."""
    flat = sorted(p.name for p in (REPO / "spaces").glob("*.py"))
    assert flat == ["__init__.py", "base.py", "nb101.py"], flat
    for family in ("nb201", "nb1shot1", "darts"):
        assert (REPO / "spaces" / family / "__init__.py").is_file(), family


def test_public_names_import_from_where_users_import_them():
    import spaces.darts
    import spaces.nb101
    import spaces.nb1shot1.nb101
    import spaces.nb201
    for obj in (spaces.nb201.network, spaces.darts.network, spaces.darts.parse_genotype,
                spaces.nb101.module_hash, spaces.nb101.network):
        assert callable(obj)
    # the alias is the module itself, so a patch through one name is seen through the other
    assert spaces.nb101 is spaces.nb1shot1.nb101
    from spaces import nb101
    assert nb101 is spaces.nb1shot1.nb101
