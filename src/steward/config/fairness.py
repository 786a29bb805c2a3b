"""The `Fairness` section (train.task = classify: the fairness evaluation and the debiasing method). Part of
the config tree of `steward.config.job`, split off by size; the conventions are job.py's (a docstring under
every field, each section checks its own values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from steward.config.choices import check_choices
from steward.config.constraints import PathName, Range, check_constraints
from steward.errors import ConfigError


@dataclass
class Fairness:
    enabled: bool = False
    """Evaluate group fairness (subgroup/BPSN/BNSP AUC gaps per family) during and after a train.task =
    classify run: metrics.jsonl, the progress line, the audit log and summary.json get the figures."""

    data: Annotated[str, PathName()] = "madlibs"
    """Classification data with identities: 'madlibs' (generated, Dixon et al. 2018 style) or a .csv,
    .parquet or local Hugging Face dataset folder in the Jigsaw/Civil Comments identities layout."""

    eval_data: Annotated[str, PathName()] = ""
    """Held-out identity set for the fairness evaluation. Empty: madlibs' balanced evaluation split, or
    fairness.eval_fraction of fairness.data held out."""

    eval_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.1
    """Share of fairness.data held out for evaluation when fairness.eval_data is empty (not for madlibs)."""

    text_field: str = ""
    """Text column. Empty: comment_text or text."""

    target_field: str = ""
    """Target column (toxicity fraction in [0, 1], or a 0/1 label; binarised at 0.5). Empty: target,
    toxicity or label."""

    identity_columns: str = ""
    """Identity columns of fairness.data, comma-separated ("col_a,col_b"; annotator fractions in [0, 1]),
    when their names differ from the Jigsaw ones. Empty: the Jigsaw names the data has; a data set with
    none (text and label only) trains without fairness evaluation."""

    madlibs_size: Annotated[int, Range(2, 10**7)] = 20000
    """Training sentences generated for fairness.data = madlibs. With a few thousand, a model also learns
    each identity term's chance label rate in the neutral sentences (an AUC gap of 0.04-0.06 per family
    with no injected association at all), which would hide the injected one."""

    madlibs_eval_size: Annotated[int, Range(2, 10**7)] = 3000
    """Evaluation sentences generated for fairness.data = madlibs (identity independent of the label)."""

    madlibs_bias: Annotated[float, Range(0, 1)] = 0.8
    """Injected association in the madlibs training split: the probability that a sentence's identity is
    drawn from the subgroups its label is associated with (0: none)."""

    pooling: Literal["mean", "last"] = "mean"
    """How the classification head pools the decoder's hidden states: 'mean' or 'last' (real tokens)."""

    adversary: Literal["none", "representation", "demographic_parity", "equalized_odds", "equal_opportunity"] = "none"
    """Adversarial debiasing (Zhang et al. 2018): 'none', 'representation' (the adversary sees the pooled
    features), 'demographic_parity' (the logit), 'equalized_odds' (the logit and the label) or
    'equal_opportunity' (the logit, on the rows labelled non-toxic only)."""

    adversary_input: Literal["standardized_logit", "probability"] = "standardized_logit"
    """How the prediction reaches a demographic_parity / equalized_odds adversary: 'standardized_logit'
    (the logit standardised over the global batch, invariant to rescaling the logits) or 'probability'
    (sigmoid(logit), Zhang et al.'s input, which the predictor can escape by squeezing its logits into
    the sigmoid's tail; see steward.fairness.adversary)."""

    adversary_target: Literal["subgroups", "subgroups_and_several", "subgroups_families_several"] = (
        "subgroups_and_several")
    """What the adversary predicts: 'subgroups_and_several' (default since v3) every subgroup and
    whether the row names two or more; 'subgroups' the subgroups only (before v3);
    'subgroups_families_several' also whether it names each family (steward.fairness.adversary,
    `adversary_targets`; README, fairness, v3)."""

    adversary_direction: Literal["both", "association", "association_label"] = "both"
    """Which way each adversary output may read the prediction: 'both' (default: any sign, the classic
    adversary); 'association' (each output's weights keep the sign of its target's association with the
    toxic label in the training split, so it detects a group only by scores moved the way a shortcut on
    that group moves them; where a group's labels were flipped by group, the rows that follow the text
    differ the other way and it does not push them towards the shortcut); 'association_label' (the same,
    and an equalized-odds adversary also reads the label as a column of its own). See
    steward.fairness.adversary, `Adversary.orient`. Needs a linear adversary on the prediction (not
    'representation'). Screened for v7 and not chosen (README, fairness, v7)."""

    adversary_cells: Literal["all", "clean"] = "all"
    """Which label cells each output of an equalized_odds adversary learns from: 'all' (every row);
    'clean' (only the cell opposite its target's association with the toxic label in the training
    split: the rows labelled non-toxic for a group named more often in toxic rows, the toxic ones for
    a group named more often in non-toxic rows; the cell that label noise by group in either direction
    leaves clean). See steward.fairness.adversary, `Adversary.use_clean_cells`; README, fairness, "A v8
    attempt". Screened for v8 and not adopted."""

    adversary_weights: Literal["none", "rows"] = "none"
    """How the adversary's loss weighs the training rows: 'none' (every row alike, as before) or 'rows'
    (the predictor's row weights, fairness.loss_weights reweigh: Kamiran-Calders, so the adversary learns
    and pushes on the same reweighed rows as the predictor, where the label is independent of the
    identity pattern and a group's base rate in each label cell is its overall share). See
    steward.fairness.adversary, `adversarial_step`. Needs reweighing (fairness.loss_weights auto or
    reweigh, with an adversary). Screened for v8 (second attempt) and not adopted (README, fairness)."""

    alpha: Annotated[float, Range(0, 1000)] = 3.0
    """Weight of the adversary term in the predictor update (fixed; with fairness.control validation
    the controller's starting value). 3: chosen on the test bed's tuning sources forum and reviews
    (of 1, 3, 10), and again for v3 on terraces and qna (of 3, 6, 10; README, fairness, v3)."""

    alpha_schedule: Literal["constant", "sqrt"] = "constant"
    """'constant', or 'sqrt' (alpha * sqrt(step), as Zhang et al. suggest)."""

    adversary_lr: Annotated[float, Range(0, 10, low_open=True)] = 1e-2
    """Learning rate of the adversary's Adam optimizer."""

    adversary_hidden: Annotated[int, Range(0, 2**16, note=" (0: linear)")] = 0
    """Hidden units of the adversary (0: linear)."""

    loss_weights: Literal["auto", "none", "reweigh", "group_dro"] = "auto"
    """How the predictor's loss weighs the training rows: 'auto' (default since v7) 'reweigh' with an
    adversary and 'none' without (`row_weights`); 'none'; 'reweigh' (Kamiran and Calders 2012:
    w = P(g) P(y) / P(g, y), g the row's identity pattern); 'group_dro' (Sagawa et al. 2020: online
    weights over the (g, y) groups, step fairness.group_dro_step). See steward.fairness.weighting.
    Why reweighing with the adversary (v7, README, fairness): in the reweighted loss the label is
    independent of the identity pattern, so a group's labels flipped by group (label noise) or drawn
    by selection no longer pay the predictor for a shortcut, and the equalized-odds adversary, which
    is told the (noisy) label, is left with the shortcut the text itself carries; on the v7 tuning
    sources bouldering (label noise by group) and couriers (association by selection) v3 without it
    removed 56% and 91% of gender's removable gap, with it 113% and 93%."""

    predictor_loss: Literal["bce", "gce", "truncated"] = "bce"
    """The predictor's per-row loss, before fairness.loss_weights: 'bce' (default), 'gce' (generalized cross-entropy,
    q fairness.loss_q) or 'truncated' (below fairness.loss_floor). steward.fairness.robust_loss; README, fairness."""

    loss_q: Annotated[float, Range(0, 1, low_open=True)] = 0.7
    """q of fairness.predictor_loss gce (0.7: Zhang and Sabuncu's choice; toward 0 the cross-entropy)."""

    loss_floor: Annotated[float, Range(0, 1, high_open=True)] = 0.2
    """Threshold of fairness.predictor_loss truncated on the predicted probability of a row's label."""

    identity_words: Literal["auto", "keep", "remove"] = "auto"
    """Whether the words that name an identity are taken out of every text before it is tokenized, in
    training and in every evaluation of the run: 'auto' (default since v8) 'remove' with an adversary and
    'keep' without (`removes_identity_words`); 'keep'; 'remove'. The words are learned from the training
    split's identity columns: a word that names one subgroup in at least fairness.identity_words_precision
    of the annotated rows containing it, in the non-toxic and in the toxic rows separately, with at least
    fairness.identity_words_min_count such rows in each (steward.fairness.identity_words). Why with the
    adversary (v8, README, fairness): whatever way the bias entered (selection, a group's labels flipped,
    co-occurrence), the shortcut runs through those words; on the v8 tuning sources campsite (label noise
    by group) and cleanup (names and nicknames) v7 removed 45% and 44% of the worst family's removable gap,
    v7 with the words removed 99% and 103%. What it costs: the model cannot read an identity word at all,
    so text whose toxicity lies in naming a group ("X should leave") loses that evidence. Needs identity
    columns in fairness.data and train.task classify."""

    identity_words_min_count: Annotated[int, Range(1, 10**9)] = 5
    """Fewest annotated rows containing a word, in each label class, for fairness.identity_words to judge it."""

    identity_words_precision: Annotated[float, Range(0.5, 1, low_open=True)] = 0.8
    """Share of a word's annotated rows, in each label class, that must name one subgroup for
    fairness.identity_words to take it out."""

    group_dro_step: Annotated[float, Range(0, 100, low_open=True)] = 0.01
    """Step size eta of group DRO's weights, q_k <- q_k exp(eta * L_k) (Sagawa et al.'s 0.01)."""

    eval_every: Annotated[int, Range(0, 10**9, note=" (0: only at the end)")] = 50
    """Evaluate the gaps every this many steps while training (0: only at the end)."""

    eval_examples: Annotated[int, Range(0, 10**9, note=" (0: all)")] = 1000
    """Examples of the held-out set used by the evaluations during training (0: all); the final one uses all."""

    bootstrap: Annotated[int, Range(0, 10**5, note=" (0: none)")] = 200
    """Bootstrap resamples for the confidence intervals of the final evaluation (0: none)."""

    max_gap: Annotated[float, Range(0, 1, note=" (0: no threshold)")] = 0.0
    """Threshold on any family's mean absolute AUC gap during training (0: no threshold)."""

    on_gap: Literal["alert", "raise_alpha", "stop"] = "alert"
    """What crossing fairness.max_gap does: 'alert' (audit event and a message), 'raise_alpha' (doubles
    alpha, with an adversary) or 'stop' (ends the run with an error)."""

    control: Literal["off", "validation", "guard"] = "off"
    """With an adversary: 'off' (default since v3): alpha fixed, every training row trained on;
    'validation' lets the controller choose alpha while training, from fairness.alpha, on
    fairness.control_fraction of the training data held out (never the evaluation set): it doubles
    alpha while the validation gap is above fairness.control_target and halves it when the AUC cost
    exceeds fairness.control_max_cost (see steward.fairness.control); 'guard' (the AUC-cost guard,
    `steward.fairness.control.CostGuard`) trains without the adversary's push up to
    fairness.control_warmup, takes that unconstrained model's AUC on the same held-out slice (identity
    made independent of the label by weights) as the reference, then applies fairness.alpha, halves it
    whenever the slice AUC falls more than fairness.control_max_cost below the reference, and ends with
    the latest state within that budget (the warm-up's at worst). Ignored without an adversary.
    Not the default: its AUC cost is measured against the best AUC of the same run, which under a
    raised alpha never reaches the unconstrained model's, and on the training data's own labels (noise
    and association included), so on held-out sources it did not bound the cost (README, fairness
    "Tuning (declared)", v3)."""

    control_fraction: Annotated[float, Range(0, 0.5, low_open=True)] = 0.2
    """Share of the training data held out (seeded by train.seed) as the controller's validation slice
    (0.2: with 0.1, 600 rows of a 6,000-row set, the weighted AUC was too noisy on the reviews source)."""

    control_every: Annotated[int, Range(1, 10**9)] = 25
    """Steps between two decisions of the controller."""

    control_warmup: Annotated[int, Range(0, 10**9)] = 50
    """Steps before the controller's first decision (alpha stays fairness.alpha until then); with
    fairness.control guard, the unconstrained warm-up (alpha 0, no projection) whose slice AUC is the
    guard's reference."""

    control_target: Annotated[float, Range(0, 1)] = 0.01
    """Target of the validation gap: the mean |BPSN| and |BNSP| gap (importance-weighted AUCs) above its
    floor under label-preserving identity permutations; above it the controller doubles alpha."""

    control_max_cost: Annotated[float, Range(0, 1)] = 0.02
    """AUC cost limit: when the validation AUC (importance-weighted) falls more than this below its running
    maximum (with fairness.control guard: below the warm-up's), the controller halves alpha (0.02: 2 points)."""

    control_max_alpha: Annotated[float, Range(0, 1000, low_open=True)] = 48.0
    """Largest alpha the controller sets (the smallest is fairness.alpha / 8)."""

    @property
    def row_weights(self) -> str:
        """fairness.loss_weights resolved: 'auto' is 'reweigh' with an adversary and 'none' without."""
        if self.loss_weights == "auto":
            return "reweigh" if self.adversary != "none" else "none"
        return self.loss_weights

    @property
    def removes_identity_words(self) -> bool:
        """fairness.identity_words resolved: 'auto' removes them with an adversary and keeps them without."""
        return self.identity_words == "remove" or (self.identity_words == "auto" and self.adversary != "none")

    @property
    def controls_alpha(self) -> bool:
        """Whether the controller sets alpha (fairness.control on, with an adversary)."""
        return self.control != "off" and self.adversary != "none"

    def __post_init__(self) -> None:
        check_choices(self)
        if self.on_gap == "raise_alpha" and self.controls_alpha and self.max_gap > 0:
            raise ConfigError("fairness.on_gap: raise_alpha and fairness.control both set alpha; use alert/stop, "
                              "or --fairness.control off")
        if self.on_gap == "raise_alpha" and self.adversary == "none" and self.max_gap > 0:
            raise ConfigError("fairness.on_gap: raise_alpha needs an adversary; set --fairness.adversary or use "
                              "alert/stop")
        check_constraints(self)
        if self.adversary_direction != "both" and (self.adversary == "representation" or self.adversary_hidden):
            raise ConfigError("fairness.adversary_direction: association needs a linear adversary on the prediction; "
                              "set --fairness.adversary_hidden 0 and an adversary other than representation, or "
                              "--fairness.adversary_direction both")
        if self.adversary_cells != "all" and self.adversary != "equalized_odds":
            raise ConfigError("fairness.adversary_cells: clean needs --fairness.adversary equalized_odds (it picks a "
                              "label cell per output); set --fairness.adversary_cells all")
        if self.adversary_weights != "none" and (self.adversary == "none" or self.row_weights != "reweigh"):
            raise ConfigError("fairness.adversary_weights: rows needs an adversary and the predictor's rows "
                              "reweighed (--fairness.loss_weights auto or reweigh); set "
                              "--fairness.adversary_weights none")
        if self.adversary_weights != "none" and self.adversary_direction == "association_label":
            raise ConfigError("fairness.adversary_weights: rows does not combine with --fairness.adversary_direction "
                              "association_label (its label column starts at the unweighted rates); set one of them "
                              "back")
        if self.identity_columns and not all(c.strip() for c in self.identity_columns.split(",")):
            raise ConfigError(f"fairness.identity_columns: {self.identity_columns!r} has an empty name; give "
                              "column names separated by commas, e.g. 'col_a,col_b'")
