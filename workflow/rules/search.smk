# Search beyond the grid (included for every search.method but grid). Every run, the
# dry-run included, starts by saying what the search is (snakesweep/search.py: describe).
#
# Search in rounds (search.method halving or optuna):
#
# Round r is a checkpoint: its output, results/plan/rounds/round_{r}.json, lists the trials it
# chose (their parameters, round and budget), computed by snakesweep/search.py from the sweep file
# and the results of rounds < r only, which are its inputs. After it finishes, Snakemake
# re-evaluates the input functions below, which then see round r's trials: they become targets
# (get_search_results, through get_all_results in common.smk) and inputs of round r+1. Steps find
# a trial's parameters in the plan, which snakesweep.plan.load_plan extends with the round files.
#
# A killed run, resumed, chooses the same trials (a round's choice depends on files only and is
# written atomically), keeps finished trials (their ids are hashes of their parameters), and a
# round file whose inputs did not change is not re-chosen. A trial that failed for good (an error
# record whose reason failures.retry_on does not retry) is neither an input of the next round nor
# retried: the search goes on without it (config/README.md, `search`).
from snakesweep.rounds import foreign_rounds, read_round, round_is_next
from snakesweep.rounds import round_trial_ids
from snakesweep.search import describe as describe_search
from snakesweep.search import final_failures, n_rounds, plan_block, search_key

SEARCH_ROUNDS = n_rounds(CFG.sweep)
SEARCH_KEY = search_key(CFG)
SEARCH_BLOCK = plan_block(CFG)


def remove_foreign_rounds():
    """Round files that are not this search's (the same sweep ran another method or other search
    settings, or an earlier round was chosen again) are removed before the DAG is built, so that
    Snakemake chooses those rounds for this search instead of reading another search's file as
    this one's (snakesweep/rounds.py: foreign_rounds). A dry-run removes nothing: it ignores them
    (_settled_results)."""
    from snakesweep.bookkeeping import snakemake_locks

    # never under a live run of this directory (it owns its rounds)
    # workflow.dryrun is not known yet at parse time; the output settings are
    dryrun = getattr(workflow.output_settings, "dryrun", False)
    if not workflow.is_main_process or dryrun or snakemake_locks(".snakemake"):
        return
    for path in foreign_rounds(Path(RESULTS, "plan"), SEARCH_BLOCK):
        try:
            path.unlink()
            logger.info(f"snakesweep: {path} is not a round of this search; removed")
        except OSError:
            pass


remove_foreign_rounds()


wildcard_constraints:
    r=r"\d+",


if workflow.is_main_process:
    logger.info(
        describe_search(CFG, Path(RESULTS, "plan") if SEARCH_IN_ROUNDS else None)
    )


def _settled_results(rounds):
    """Every selected step's result of the trials of the given rounds (each round chosen, or
    the checkpoint exception that makes Snakemake choose it first), leaving out trials that
    failed for good. All steps, like get_all_results: a round reads each step's metrics, and
    a corrupt eval.json set aside under an existing measure.json must be redone first.
    """
    # a record older than the files its step runs failed under other code: retried
    sources = {step: get_sources(step) for step in STEPS}
    failed = final_failures(LOGS, STEPS, CFG.failures.retry_on, sources)
    paths = []
    earlier = []
    for r in rounds:
        doc = read_round(checkpoints.search_round.get(r=r).output.json)
        if not round_is_next(doc, r, SEARCH_BLOCK, earlier):
            break  # another search's round (a dry-run keeps it): never a target of this one
        earlier.append(doc)
        ids = [t for t in round_trial_ids(doc) if t not in failed]
        paths += [result_path(t, step) for t in ids for step in STEPS]
    return paths


def get_round_inputs(wildcards):
    """Round r waits for every earlier round's choice and for their trials' results."""
    r = int(wildcards.r)
    return {
        "plan": ancient(rules.plan.output.json),
        "rounds": [ancient(f"{RESULTS}/plan/rounds/round_{k}.json") for k in range(r)],
        "results": _settled_results(range(r)),
    }


def get_search_results(wildcards):
    """Every round's trials' final results: the sweep's targets, known round by round."""
    return _settled_results(range(SEARCH_ROUNDS))


# random and sobol: every trial is in the plan already (snakesweep/grid.py: expand)
if SEARCH_IN_ROUNDS:

    checkpoint search_round:
        input:
            unpack(get_round_inputs),
        output:
            json=f"{RESULTS}/plan/rounds/round_{{r}}.json",
        log:
            f"{LOGS}/search/round_{{r}}.log",
        localrule: True
        conda:
            "../../environment.yml"
        params:
            # what the choices depend on (search settings, space, objective...; not `rounds`):
            # a change re-chooses the rounds, and raising `rounds` keeps the earlier ones
            key=SEARCH_KEY,
            script=get_script("search_round"),
        shell:
            "python {params.script:q} --round {wildcards.r:q} --plan {input.plan:q}"
            " --output {output.json:q} --log {log:q}"
