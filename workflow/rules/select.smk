# Stage 3: learning-rate selection. Each round is a checkpoint: it reads the runs of its grid, and either
# settles on the lr with the best mean dev score or names one lr beyond the border of the grid; the next round
# then asks for that lr's runs (see maskbench.results.selection for the extension rules and the cap).


def run_files(pattern, cell, lrs, seeds=None):
    seeds = SEEDS if seeds is None else seeds
    return [
        pattern.format(model=cell.model, task=cell.task, method=cell.method, lr=lr, seed=seed)
        for lr in lrs
        for seed in seeds
    ]


def selection_round(cell, index):
    """Selection round ``index`` of this (model, task, method), checked (maskbench.records); raises until it ran."""
    path = checkpoints.select_lr.get(model=cell.model, task=cell.task, method=cell.method, round=str(index)).output[0]
    return path, planned(read_selection_round, path)


def round_inputs(wildcards):
    index = int(wildcards.round)
    previous = selection_round(wildcards, index - 1) if index > 0 else None
    grid = planned(next_round_grid, config["lr_grid"][wildcards.method], previous and previous[1])
    inputs = {"runs": run_files(RUN_METRICS, wildcards, grid, SELECTION_SEEDS)}
    return {**inputs, "previous": previous[0]} if previous else inputs


def selection_rounds(cell):
    """The rounds of a cell until the final one (the cap on extensions guarantees one): [(path, record), ...]."""
    rounds = [selection_round(cell, 0)]
    while not rounds[-1][1]["final"]:
        rounds.append(selection_round(cell, len(rounds)))
    return rounds


def final_selection(wildcards):
    return selection_rounds(wildcards)[-1][0]


def chosen_lr(cell):
    return selection_rounds(cell)[-1][1]["best_lr"]


def chosen_runs(wildcards):
    """The metrics and predictions of every seed at the chosen lr."""
    lr = [chosen_lr(wildcards)]
    return {"runs": run_files(RUN_METRICS, wildcards, lr), "predictions": run_files(RUN_PREDICTIONS, wildcards, lr)}


def chosen_run(model, task, method, seed):
    """metrics.json of the grid's run at the selected lr (known once that cell's lr selection has run)."""
    cell = SimpleNamespace(model=model, task=task, method=method)
    return RUN_METRICS.format(model=model, task=task, method=method, lr=chosen_lr(cell), seed=seed)


def run_targets(wildcards):
    """Every selection round and every training run of the (possibly extended) grids: a deleted run (or record)
    comes back on the next invocation, with everything made from it (Snakemake regenerates only targets' inputs)."""
    files = []
    for model, task, method in CELLS:
        cell = SimpleNamespace(model=model, task=task, method=method)
        rounds = selection_rounds(cell)
        files += [path for path, _ in rounds]
        selection = rounds[-1][1]
        for pattern in (RUN_METRICS, RUN_PREDICTIONS):
            files += run_files(pattern, cell, selection["grid"], SELECTION_SEEDS)
        for pattern in (RUN_METRICS, RUN_PREDICTIONS):
            files += run_files(pattern, cell, [selection["best_lr"]])
    return files


checkpoint select_lr:
    input:
        unpack(round_inputs),
    output:
        SELECTION_ROUND,
    params:
        grid=lambda wildcards: sorted_grid(config["lr_grid"][wildcards.method]),
        seeds=SELECTION_SEEDS,
        extension=config["lr_extension"],
    run:
        from maskbench.results import selection as select

        select.write_selection(
            input.runs,
            output[0],
            params.grid,
            params.seeds,
            params.extension,
            int(wildcards.round),
            input.get("previous"),
        )


rule choose_lr:
    input:
        final_selection,
    output:
        CHOSEN,
    params:
        grid=lambda wildcards: sorted_grid(config["lr_grid"][wildcards.method]),
    run:
        from maskbench.results import selection as select

        select.write_choice(input[0], output[0], params.grid)
