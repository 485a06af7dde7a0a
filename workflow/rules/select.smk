# Stage 3: learning-rate selection. Each round is a checkpoint: it reads the runs of its grid, and either
# settles on the lr with the best mean dev score or names one lr beyond the border of the grid; the next round
# then asks for that lr's runs (see maskbench.results.selection for the extension rules and the cap).


checkpoint select_lr:
    input:
        unpack(round_inputs),
    output:
        SELECTION_ROUND,
    log:
        log_file("select", "{model}/{task}/{method}/round{round}"),
    params:
        grid=lambda wildcards: sorted_grid(config["lr_grid"][wildcards.method]),
        seeds=SELECTION_SEEDS,
        extension=config["lr_extension"],
    run:
        from maskbench.results import selection as select

        logged_step(
            log,
            select.write_selection,
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
    log:
        log_file("select", "{model}/{task}/{method}/chosen"),
    params:
        grid=lambda wildcards: sorted_grid(config["lr_grid"][wildcards.method]),
    run:
        from maskbench.results import selection as select

        logged_step(log, select.write_choice, input[0], output[0], params.grid)
