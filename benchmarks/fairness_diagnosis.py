"""Where the equalized-odds adversary's push goes on one test-bed source (issue 17, item 3): the
diagnosis quoted in the README's "Why the adversary did little". Not a test; a measurement.

    PYTHONPATH=src python benchmarks/fairness_diagnosis.py profiles   # or forum, threads, ...

Trains seed 0 (debug, 300 steps, 6,000 rows) without an adversary on the biased split, on the
unbiased twin, and with the equalized-odds adversary (alpha 1), recording at every step of the
last the norms of the predictor's and the adversary's gradients, their cosine and the projection
coefficient. Then, on the biased training split, it fits a linear adversary (from the prior, LBFGS)
to each model's standardised logits for the subgroups that carry the source's association, with the
demographic-parity ("dp"), equalized-odds ("eo") and equal-opportunity ("neg": rows labelled 0)
inputs, and prints how much it learns (millinats below the prior) and where its gradient moves the
logits (per row, mean over: carrying rows labelled 0; carrying rows labelled 1 whose text is friendly;
other rows labelled 0), plus each model's mean logit offset of carrying vs other rows labelled 0.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import steward.fairness.adversary as adv
from steward.classify.data import Encoded, train_split_tokenizer
from steward.classify.trainer import ClassifyTrainer
from steward.config import load_config
from steward.fairness.testbed import SOURCES, generate_source, write_identities

src = sys.argv[1]
seed = 0
tmp = Path(tempfile.mkdtemp())
files = {s: str(write_identities(generate_source(src, 3000 if s == "test" else 6000, seed=seed, split=s), tmp / f"{s}.csv")) for s in ("train", "twin", "test")}
log = []
orig = adv.projected_gradients
def spy(gp, ga, alpha, eps=1e-30):
    pa = float(adv.grad_dot(gp, ga))
    aa = float(adv.grad_dot(ga, ga))
    pp = float(adv.grad_dot(gp, gp))
    log.append((pp ** .5, aa ** .5, pa / max((pp * aa) ** .5, 1e-30), pa / aa if aa > eps else 0.0))
    return orig(gp, ga, alpha, eps)
adv.projected_gradients = spy

def run(name, train, adversary):
    ov = ["--train.task", "classify", "--model.flavor", "debug", "--train.steps", "300", "--train.batch_size", "32",
          "--train.lr", "1e-3", "--train.warmup_steps", "10", "--train.val_every", "0", "--train.seed", str(seed),
          "--train.threads", "1", "--governance.enabled", "false", "--checkpoint.enabled", "false",
          "--job.out", str(tmp / name), "--job.overwrite", "true", "--fairness.enabled", "true", "--fairness.eval_every", "0",
          "--fairness.bootstrap", "0", "--fairness.data", train, "--fairness.eval_data", files["test"],
          "--fairness.adversary", adversary, "--fairness.alpha", "1",
          "--fairness.identity_words", "keep"]  # the adversary alone, as diagnosed (v8's default removes them)
    tok = train_split_tokenizer(load_config(None, ov), 4096, tmp / f"tok-{name}.json")[0]
    t = ClassifyTrainer(load_config(None, ov + ["--data.tokenizer", str(tok)]))
    s = t.run()
    return t, s["fairness"]

def fit_adv(logit, y, ident, variant, steps=400):
    """Best linear adversary (from the prior) on frozen standardized logits: its loss drop vs the prior (nats x1000)."""
    z = torch.as_tensor((logit - logit.mean()) / logit.std(), dtype=torch.float64).reshape(-1, 1)
    yy = torch.as_tensor(y, dtype=torch.float64).reshape(-1, 1)
    x = {"dp": z, "eo": torch.cat([z, z * yy, z * (1 - yy)], 1), "neg": z * (1 - yy)}[variant]
    ident_t = torch.as_tensor(ident, dtype=torch.float64)
    A = adv.Adversary(x.shape[1], ident_t.shape[1]).double()
    A.start_at_prior(ident)
    prior = float(adv.adversary_loss(A(x), ident_t))
    opt = torch.optim.LBFGS(A.parameters(), max_iter=steps)
    def closure():
        opt.zero_grad()
        loss = adv.adversary_loss(A(x), ident_t)
        loss.backward()
        return loss
    opt.step(closure)
    zz = z.clone().requires_grad_(True)
    xx = {"dp": zz, "eo": torch.cat([zz, zz * yy, zz * (1 - yy)], 1), "neg": zz * (1 - yy)}[variant]
    la = adv.adversary_loss(A(xx), ident_t)
    la.backward()
    return 1000 * (prior - float(la)), zz.grad.numpy().reshape(-1) * len(z)  # the predictor's logit moves along +dL_A/dz (hurts A); per row

out = {}
base, fb = run("base", files["train"], "none")
twin, ft = run("twin", files["twin"], "none")
log.clear()
eo, fe = run("eo", files["train"], "equalized_odds")
L = np.array(log)
out["grad"] = {"|g_p| median": float(np.median(L[:, 0])), "|g_a| median": float(np.median(L[:, 1])),
               "cos(g_p,g_a) median": float(np.median(L[:, 2])), "cos p10/p90": [float(np.percentile(L[:, 2], 10)), float(np.percentile(L[:, 2], 90))],
               "proj coef median": float(np.median(L[:, 3])),
               "|alpha g_a| / |projected part| median": float(np.median(1 / np.maximum(np.abs(L[:, 3]), 1e-12))),
               "steps": len(L)}
out["gaps"] = {k: {"base": fb["mean_abs_gap"], "eo": fe["mean_abs_gap"], "twin": ft["mean_abs_gap"]}[k] for k in ("base", "eo", "twin")}
enc = base.data.train_enc
y = enc.labels.numpy()
ident = enc.identity.numpy()
names = enc.data.subgroup_names()
carry = np.array([n.split("/")[-1] in SOURCES[src].carrying for n in names])
crow = ident[:, carry].any(1)
texts = enc.data.texts
good = np.array([any(w in t for w in ("coached", "fixed the library", "remembers", "food drive", "thanks", "praise",
                                      "helpful", "thoughtful", "patient", "clever", "welcoming", "sharp")) for t in texts])
for name, tr in (("baseline", base), ("twin_model", twin), ("eo_model", eo)):
    e2 = enc if tr is base else Encoded(enc.data, tr.tokenizer, 4096)  # each model read as it trained
    lg = np.log(np.clip(tr.predict(e2), 1e-7, 1 - 1e-7))
    lg = lg - np.log1p(-np.exp(lg))
    r = {}
    for v in ("dp", "eo", "neg"):
        gain, push = fit_adv(lg, y, ident[:, carry], v)
        sel = crow & (y == 1) & good  # carrying-group friendly rows the noise (or association) labelled toxic
        sel0 = crow & (y == 0)
        r[v] = {"adv_gain_millinats": round(gain, 3),
                "move_carrying_y1_friendly": float(push[sel].mean()) if sel.any() else None,
                "move_carrying_y0": float(push[sel0].mean()), "move_other_y0": float(push[~crow & (y == 0)].mean())}
    r["logit carrying y0 - other y0"] = float(lg[crow & (y == 0)].mean() - lg[~crow & (y == 0)].mean())
    out[name] = r
print(json.dumps(out, indent=1))
