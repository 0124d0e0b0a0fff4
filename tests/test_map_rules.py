"""--map FILE: the user's weight-map rules ({i} placeholders, [q,k,v] splits, transforms), parsed at the CLI
and expanded on the live parameter names."""
from __future__ import annotations

import numpy as np

import pytest

from conftest import ROOT, fx, parity
from parity_skill.plan.map_rules import expand, parse_rules

MAPPED = "realcode/mapped/"


def test_rules_expand_placeholders_splits_and_concatenations():
    rules = parse_rules("# fused attention\nh.{i}.attn.c_attn.weight -> layers.{i}.attn.[q,k,v].weight\n"
                        "h.{i}.mlp.[w1,w3].weight -> layers.{i}.mlp.gate_up.weight\n"
                        "h.{i}.mlp.c_proj.weight -> layers.{i}.mlp.down.weight transpose\n")
    shapes_a = {f"h.{i}.{n}": s for i in (0, 1) for n, s in (("attn.c_attn.weight", (24, 8)),
                                                             ("mlp.w1.weight", (16, 8)), ("mlp.w3.weight", (16, 8)),
                                                             ("mlp.c_proj.weight", (16, 8)))}
    shapes_b = {f"layers.{i}.{n}": s for i in (0, 1) for n, s in (("attn.q.weight", (8, 8)), ("attn.k.weight", (8, 8)),
                                                                  ("attn.v.weight", (8, 8)),
                                                                  ("mlp.gate_up.weight", (32, 8)),
                                                                  ("mlp.down.weight", (8, 16)))}
    entries = {(e.a, e.b, e.transform) for e in expand(rules, shapes_a, shapes_b)}
    assert ("h.1.attn.c_attn.weight", "layers.1.attn.q.weight+layers.1.attn.k.weight+layers.1.attn.v.weight",
            "split0:8,8,8") in entries
    assert ("h.0.mlp.w1.weight+h.0.mlp.w3.weight", "layers.0.mlp.gate_up.weight", "concat0:16,16") in entries
    assert ("h.0.mlp.c_proj.weight", "layers.0.mlp.down.weight", "transpose") in entries and len(entries) == 6
    with pytest.raises(ValueError, match="do not stack"):
        expand(parse_rules("h.{i}.attn.c_attn.weight -> layers.{i}.attn.[q,k].weight"), shapes_a, shapes_b)
    with pytest.raises(ValueError, match="matches no parameter of A"):
        expand(parse_rules("wte.weight -> embed.weight"), shapes_a, shapes_b)


@pytest.mark.parametrize("text, message", [("a.weight => b.weight", "expected 'A_NAME -> B_NAME"),
                                           ("a.weight -> b.weight flip", "unknown transform"),
                                           ("a.weight -> b.{i}.weight", "placeholders")])
def test_malformed_rules_name_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_rules("# header\n" + text, "map.txt")


def test_map_file_makes_an_unmappable_port_comparable_and_a_wrong_rule_is_an_error(tmp_path):
    a, b = fx(MAPPED + "stored_in_out.py::Net"), fx(MAPPED + "linear_port.py::Net")
    alone = parity(a, "vs", b, "--json", "--quick")
    assert alone.status("weights") == "fail"  # (in, out) parameters without a bias: nothing to infer from
    mapped = parity(a, "vs", b, "--json", "--quick", "--map", fx(MAPPED + "map.txt"))
    assert mapped.report["verdict"] == "pass", mapped.stderr
    assert {(e["a"], e["b"], e["transform"], e["how"]) for e in mapped.pair["weight_map"]} >= {
        ("blocks.1.w_in", "layers.1.fc1.weight", "transpose", "user")}
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("blocks.{i}.w_in -> layers.{i}.fc9.weight transpose\n")
    run = parity(a, "vs", b, "--quick", "--map", str(wrong))
    assert run.code == 2 and "layers.0.fc9.weight is not a parameter of B" in run.stderr
    typo = tmp_path / "typo.txt"
    typo.write_text("blocks.{i}.w_in => x\n")
    run = parity(a, "vs", b, "--quick", "--map", str(typo))
    assert run.code == 2 and "typo.txt:1" in run.stderr and "Traceback" not in run.stderr


def test_a_positional_guess_with_an_equal_rival_says_ambiguous():
    from parity_skill.plan.weight_map import ParamInfo, match_parameters

    a = [ParamInfo("l.a.weight", (8, 8)), ParamInfo("l.b.weight", (8, 8))]
    b = [ParamInfo("m.x.weight", (8, 8)), ParamInfo("m.y.weight", (8, 8))]
    first, second = match_parameters(a, b)[0]
    assert first.how == "order+shape; ambiguous: m.y.weight fits as well"  # the choice, and the other one
    assert second.how == "order+shape"  # nothing else was left for it


CONVERTER = '''
def convert(weights):
    out = {}
    for name, value in weights.items():
        block, i, leaf = name.split(".")
        out["layers." + i + (".fc1" if leaf == "w_in" else ".fc2") + ".weight"] = value.T{bug}
    return out
'''


def test_the_ports_own_converter_is_used_and_put_under_test(tmp_path):
    """--convert file.py::fn turns A's state dict into B's; the values are traced back to A (transposed here) so
    gradients still compare; a converter bug fails the checks."""
    a, b = fx(MAPPED + "stored_in_out.py::Net"), fx(MAPPED + "linear_port.py::Net")
    good = tmp_path / "convert_ok.py"
    good.write_text(CONVERTER.replace("{bug}", ""))
    run = parity(a, "vs", b, "--json", "--quick", "--convert", f"{good}::convert")
    assert run.report["verdict"] == "pass", run.stderr
    assert ("blocks.0.w_in", "layers.0.fc1.weight", "transpose", "convert") in {
        (e["a"], e["b"], e["transform"], e["how"]) for e in run.pair["weight_map"]}
    bad = tmp_path / "convert_bad.py"  # scales the second layer's weights by 1.01
    bad.write_text(CONVERTER.replace("{bug}", " * (1.0 if leaf == 'w_in' else 1.01)"))
    broken = parity(a, "vs", b, "--json", "--quick", "--convert", f"{bad}::convert")
    assert broken.code == 1 and broken.status("forward") == "fail"
    assert any("no converted value equals A's blocks.0.w_out" in n for n in broken.pair["notes"])
    missing = parity(a, "vs", b, "--quick", "--convert", "nope")
    assert missing.code == 2 and "--convert nope" in missing.stderr


def test_a_ports_sanitize_maps_what_names_cannot_without_being_asked(tmp_path):
    """B's model ships `sanitize` (as mlx-lm ports do): where names and module trees leave weights unmapped, it is
    used unasked, and a bug in it fails the checks like any other port bug."""
    a = fx(MAPPED + "stored_in_out.py::Net")
    source = (ROOT / fx(MAPPED + "linear_port.py")).read_text()
    method = "\n    def sanitize(self, weights):" + CONVERTER.split("def convert(weights):", 1)[1].replace("\n", "\n    ")
    for name, bug in (("port_ok.py", ""), ("port_bad.py", " * (1.0 if leaf == 'w_in' else 1.01)")):
        port = tmp_path / name
        port.write_text(source.replace("        return x\n\n\nclass Block", "        return x\n" +
                                       method.replace("{bug}", bug) + "\n\nclass Block", 1))
        run = parity(a, "vs", f"{port}::Net", "--json", "--quick")
        assert any("mapped through B's own sanitize" in n for n in run.pair["notes"]), run.pair["notes"]
        assert run.report["verdict"] == ("pass" if not bug else "fail"), run.stderr


def test_a_stacked_tensor_of_joined_parameters_is_traced_back_to_a():
    """transformers 5's fused experts: `gate_up_proj` (E, 2I, H) stacks [w1; w3] of each expert, `down_proj` stacks
    w2; both are traced back to A's per-expert tensors, in the order the converter used, and rebuilt from them."""
    import numpy as np

    from parity_skill.runtime.data.convert import _stack_of
    from parity_skill.runtime.data.weights import b_values
    from parity_skill.spec import MapEntry

    rng = np.random.default_rng(0)
    state = {f"experts.{e}.w{k}.weight": rng.standard_normal((4, 3) if k != 2 else (3, 4)) for e in range(3)
             for k in (1, 2, 3)}
    by_size: dict[int, list[str]] = {}
    for k, v in state.items():
        by_size.setdefault(v.size, []).append(k)
    for first, second in (("w1", "w3"), ("w3", "w1")):
        fused = np.stack([np.concatenate([state[f"experts.{e}.{first}.weight"], state[f"experts.{e}.{second}.weight"]])
                          for e in range(3)])
        names, how = _stack_of(fused, state, by_size, list(state))
        assert how == "stack:concat0:4,4" and names[:2] == [f"experts.0.{first}.weight", f"experts.0.{second}.weight"]
        rebuilt = b_values(state, [MapEntry("+".join(names), "gate_up_proj", how, "convert")])["gate_up_proj"]
        assert np.array_equal(rebuilt, fused)
    down = np.stack([state[f"experts.{e}.w2.weight"] for e in range(3)])
    assert _stack_of(down, state, by_size, list(state)) == ([f"experts.{e}.w2.weight" for e in range(3)], "stack")
    assert _stack_of(down + 1e-3, state, by_size, list(state)) is None  # not A's values: not traced



def test_b_tensors_that_are_slices_of_a_fused_a_tensor_are_traced_back_to_it():
    """A fuses (transformers 5: gate_up_proj (E, 2I, H), a qkv of 3d rows), B keeps the pieces: per expert and per
    half ("unstack:split0"), per expert ("unstack"), halves of the whole stack ("split1"), rows ("split0"); each
    rebuilt from A's tensor exactly as B holds it (gradients compare through the same transform)."""
    import numpy as np

    from parity_skill.runtime.data.convert import _unstacked
    from parity_skill.runtime.data.weights import b_values

    rng = np.random.default_rng(0)
    a = {"gate_up": rng.standard_normal((3, 8, 5)).astype(np.float32),
         "down": rng.standard_normal((3, 5, 4)).astype(np.float32),
         "qkv": rng.standard_normal((12, 5)).astype(np.float32),
         "gate_up2": rng.standard_normal((3, 8, 5)).astype(np.float32),
         "w2": rng.standard_normal((3 * 6, 5)).astype(np.float32)}  # DBRX: experts' down projections as one matrix
    b = {**{f"e.{i}.w1": a["gate_up"][i, :4] for i in range(3)}, **{f"e.{i}.w3": a["gate_up"][i, 4:] for i in range(3)},
         **{f"e.{i}.w2": a["down"][i] for i in range(3)}, "q": a["qkv"][:4], "k": a["qkv"][4:8], "v": a["qkv"][8:],
         "gate": a["gate_up2"][:, :4], "up": a["gate_up2"][:, 4:],
         **{f"e.{i}.down.weight": a["w2"][6 * i:6 * (i + 1)].T for i in range(3)}}  # mlx-lm: split, then transposed
    b = {k: np.ascontiguousarray(v) for k, v in b.items()}
    found = {e.a: e for e in _unstacked(b, sorted(b), a, set())}
    assert {k: e.transform for k, e in found.items()} == {
        "gate_up": "unstack:split0:4,4", "down": "unstack", "qkv": "split0:4,4,4", "gate_up2": "split1:4,4",
        "w2": "split0:6,6,6|T"}
    assert found["gate_up"].b.split("+")[:3] == ["e.0.w1", "e.0.w3", "e.1.w1"]
    for e in found.values():
        rebuilt = b_values(a, [e])
        assert all(np.array_equal(rebuilt[n], b[n]) for n in e.b.split("+")), e


def test_a_parameter_of_the_same_name_with_a_size_one_axis_more_is_reshaped_not_left_unmapped():
    """transformers' XIELU keeps alpha_p as (1,), mlx-lm's as a scalar (its sanitize squeezes it): by name, reshaped;
    never across names."""
    from parity_skill.plan.weight_map import ParamInfo, apply_shape, match_parameters
    from parity_skill.runtime.data.weights import transform

    entries, left_a, left_b = match_parameters(
        [ParamInfo("act.alpha_p", (1,)), ParamInfo("fc.weight", (4, 4)), ParamInfo("other", (1, 3))],
        [ParamInfo("act.alpha_p", ()), ParamInfo("fc.weight", (4, 4)), ParamInfo("elsewhere", (3,))])
    alpha = next(e for e in entries if e.a == "act.alpha_p")
    assert alpha.b == "act.alpha_p" and alpha.transform == "reshape:" and apply_shape(alpha.transform, (1,)) == ()
    assert transform(np.array([0.25], np.float32), alpha.transform)[0].shape == ()
    assert not any(e.a == "other" and e.transform.startswith("reshape") for e in entries)
