"""Fresh held-out planted-rule tasks (issue 18), written after the engine's own held-out tasks
(`steward.explain.planted.TASKS`) had been seen while tuning it, by an author who had not read the
engine: none of these was looked at while choosing the engine's settings, so all are held out.

Same interface as `steward.explain.planted` (a `PlantedTask` each, the label a formula over words),
but each task has its own vocabulary and templates that share no content word with the earlier tasks
(or with each other), and the tasks differ from them in shape, word rates and text length:

- `chat_rare`: a rare trigger (about 4% of texts) in chat register, short texts (4 to 6 words), with a
  frequent distractor word (`lol`, in about 60%) that decides nothing;
- `mine_negation`: NOT a AND b where the negated word is the frequent one (quartz in about 55% of
  texts, pickaxe in 90%; about 40% positives, not rebalanced so the rates stay as stated);
- `ward_disjunction`: a three-word disjunction in long texts (25 to 40 words), balanced;
- `film_conjunction`: a conjunction of a frequent word (popcorn, about 60%) and a rare-ish one
  (subtitles, about 15%): about 9% positives, not rebalanced so the word rates stay as stated;
- `deploy_order`: an order rule against the natural order (deploy before compile), where compile is
  in about 90% of texts and deploy in 75%, so neither word's presence decides; balanced;
- `camp_count`: at least 2 of 4 words, long texts, balanced;
- `plaza_control`: random labels with three decoy words, long texts.

`FRESH_TASKS` holds them; `PLANTED` is every task (the earlier ones and these), and `planted_names`
resolves `--planted`: task names from either set, `all` (the earlier tasks, as before) or `fresh`.
"""

from __future__ import annotations

from steward.explain.planted import TASKS, PlantedTask, _task, task_names

LENGTHS: dict[str, tuple[int, int]] = {
    "chat_rare": (4, 6), "mine_negation": (6, 8), "ward_disjunction": (29, 40), "film_conjunction": (5, 9),
    "deploy_order": (11, 15), "camp_count": (28, 36), "plaza_control": (25, 31),
}
"""Each task's text length in words: its shortest template to its longest with every word inserted."""

_WARD = {
    "shift": "rounds nightshift handover triage", "nurse": "nurse orderly paramedic midwife",
    "checked": "examined assessed monitored reassessed", "patient": "patient toddler pensioner newcomer",
    "ward": "cardiology paediatrics oncology radiology", "noted": "logged documented observed charted",
    "symptom": "fever rash cough swelling dizziness", "changed": "worsened eased spread subsided",
    "time": "breakfast admission lunchtime midnight", "doctor": "surgeon consultant registrar physician",
    "ordered": "requested prescribed scheduled arranged", "test": "bloodwork xrays scans biopsies",
    "meal": "supper brunch teatime", "relative": "relatives spouses grandchildren neighbours",
    "waited": "lingered paced chatted dozed", "where": "outside downstairs nearby anxiously",
}

_CAMP = {
    "hiker": "hikers scouts trekkers climbers campers", "walked": "trekked hiked scrambled marched",
    "trail": "trail path switchback ridgeline", "peak": "summit pass saddle crag",
    "sky2": "starlit moonlit breezy drizzly", "fire": "campfire embers kindling",
    "cooked": "toasted grilled boiled heated", "snack": "marshmallows sausages beans noodles",
    "animal": "deer marmots owls chipmunks", "heard": "spotted glimpsed noticed startled",
    "pace": "steadily wearily cheerfully carefully", "lake": "tarn creek lagoon waterfall",
}

_PLAZA = {
    "crowd": "tourists pedestrians commuters buskers", "strolled": "ambled strolled loitered gathered",
    "square": "plaza piazza boulevard promenade", "building": "cathedral museum townhall library",
    "style": "gothic baroque modernist neoclassical", "facade": "facade spire dome colonnade",
    "vendor": "florist newsagent pretzel vendor", "sold": "offered peddled displayed advertised",
    "goods": "postcards souvenirs pastries magazines", "weather2": "sunny humid chilly windy",
    "hour": "midmorning afternoon twilight", "sound": "bells chatter traffic pigeons",
}

FRESH_TASKS: dict[str, PlantedTask] = {t.name: t for t in (
    _task("chat_rare", "bestie",
          "{greet} {pal} {msg} {tag} ; {pal} {msg} {tag} {greet} ; omg {pal} {msg} {tag}",
          {"greet": "hey heyy sup yo hiya", "pal": "dude mate fam pals guys", "msg": "brb ttyl omw gtg idk",
           "tag": "tbh fr ngl imo smh"},
          {"lol": 0.6, "bestie": 0.04},
          "a rare trigger word in chat register: bestie (about 4% of texts; lol, in about 60%, decides nothing)",
          balanced=False),
    _task("mine_negation", ("and", ("not", "quartz"), "pickaxe"),
          "the {miner} {dug} through {rock} {depth} ; {miner} hauled {ore} from the {tunnel} ; "
          "{rock} {crumbled} inside the {tunnel} {depth}",
          {"miner": "prospector geologist foreman driller surveyor", "dug": "chiselled drilled blasted probed",
           "rock": "granite basalt shale slate limestone", "depth": "underground deeper downward sideways",
           "ore": "nickel cobalt zinc tin gypsum", "tunnel": "shaft cavern quarry seam mineshaft",
           "crumbled": "cracked shifted collapsed trembled"},
          {"quartz": 0.55, "pickaxe": 0.9},
          "a negation of the frequent word: not quartz (about 55% of texts) and pickaxe (about 90%)",
          balanced=False),
    _task("ward_disjunction", ("or", "stethoscope", "syringe", "bandage"),
          "during {shift} the {nurse} {checked} the {patient} in {ward} and {noted} that the {symptom} had "
          "{changed} since {time} so the {doctor} {ordered} {test} before {meal} while {relative} {waited} {where} ; "
          "after {time} the {doctor} {ordered} {test} because the {patient} in {ward} showed {symptom} that "
          "{changed} quickly and the {nurse} {noted} it while {relative} {waited} {where} with coffee and the "
          "{shift} team {checked} charts ; "
          "the {relative} of the {patient} {waited} {where} through {shift} until the {doctor} from {ward} "
          "explained why the {symptom} {changed} after {time} and the {nurse} {noted} each reading then "
          "{checked} the {patient} anew before {meal} and once more",
          _WARD, {"stethoscope": 0.22, "syringe": 0.22, "bandage": 0.22},
          "a three-word disjunction: stethoscope or syringe or bandage (long texts)"),
    _task("film_conjunction", ("and", "popcorn", "subtitles"),
          "{viewer} {watched} a {genre} {film} ; the {genre} {film} {pleased} {viewer} ; "
          "{viewer} {watched} the {film} at the {matinee}",
          {"viewer": "critics teenagers moviegoers cinephiles", "watched": "streamed reviewed rewatched enjoyed",
           "genre": "horror western thriller documentary comedy", "film": "film movie feature premiere",
           "pleased": "delighted bored thrilled puzzled", "matinee": "matinee multiplex drivein cinema"},
          {"popcorn": 0.6, "subtitles": 0.15},
          "a skewed conjunction: popcorn (about 60% of texts) and subtitles (about 15%), about 9% positives",
          balanced=False),
    _task("deploy_order", ("before", "deploy", "compile"),
          "the {engineer} {pushed} a {change} to the {repo} and {waited} for {review} ; "
          "our {engineer} {fixed} the {bug} in the {repo} {hastily} after {review} ; "
          "a {change} for the {bug} sat in {review} while the {engineer} {fixed} {tests}",
          {"engineer": "developer maintainer contributor programmer tester",
           "pushed": "pushed merged rebased reverted", "change": "patch refactor hotfix migration",
           "repo": "repository monorepo codebase branch", "waited": "hoped pinged queued",
           "review": "approval codereview signoff triaging", "fixed": "debugged profiled patched rewrote",
           "bug": "regression crash leak deadlock", "hastily": "hastily cautiously quietly reluctantly",
           "tests": "unittests linting benchmarks fixtures"},
          {"compile": 0.9, "deploy": 0.75},
          "an order rule against the natural order: deploy before compile (compile in about 90% of texts)"),
    _task("camp_count", ("atleast", 2, "tent", "compass", "kayak", "hammock"),
          "the {hiker} {walked} up the {trail} toward the {peak} {pace} and at nightfall they {cooked} {snack} over "
          "the {fire} under a {sky2} sky while {animal} watched from the {lake} ; "
          "on the {sky2} morning the {hiker} {heard} {animal} near the {lake} then {walked} along the {trail} "
          "{pace} to reach the {peak} where they {cooked} {snack} beside the {fire} ; "
          "{hiker} {walked} {pace} beyond the {lake} and {heard} {animal} along the {trail} before the {peak} "
          "and afterwards they {cooked} {snack} on the {fire} as the {sky2} evening settled over the canyon floor",
          _CAMP, {"tent": 0.3, "compass": 0.3, "kayak": 0.3, "hammock": 0.3},
          "a count rule: at least two of tent, compass, kayak, hammock (long texts)"),
    _task("plaza_control", None,
          "{crowd} {strolled} across the {square} past the {style} {building} whose {facade} caught the "
          "{weather2} light of the {hour} while a {vendor} {sold} {goods} and {sound} filled the air ; "
          "in the {hour} the {square} was {weather2} and {crowd} {strolled} between the {building} and a "
          "{vendor} who {sold} {goods} beneath the {style} {facade} amid {sound} ; "
          "a {vendor} {sold} {goods} to {crowd} who {strolled} through the {weather2} {square} admiring the "
          "{style} {facade} of the {building} as {sound} echoed all {hour} long",
          _PLAZA, {"velvet": 0.4, "marble": 0.4, "thunder": 0.4},
          "a control: random labels in long texts (decoy words velvet, marble, thunder)"),
)}

PLANTED: dict[str, PlantedTask] = {**TASKS, **FRESH_TASKS}
"""Every planted task the bench can run: the earlier test bed and the fresh held-out tasks."""


def planted_names(spec: str) -> list[str]:
    """`--planted`'s value: 'all' (the earlier tasks, `TASKS`), 'fresh' (`FRESH_TASKS`), or a
    comma-separated list of task names and these two groups, checked."""
    return task_names(spec, PLANTED, {"all": list(TASKS), "fresh": list(FRESH_TASKS)})
