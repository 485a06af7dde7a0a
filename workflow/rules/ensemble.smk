# Stage 5: the ensemble of the seeds at the chosen lr; majority vote, mean logits and mean probabilities are
# scored on dev and the best is chosen (maskbench.results.ensemble).


rule ensemble:
    input:
        unpack(chosen_runs),
        chosen=CHOSEN,
    output:
        ENSEMBLE,
    log:
        log_file("ensemble", "{model}/{task}/{method}"),
    run:
        from maskbench.results import ensemble

        logged_step(log, ensemble.write_ensemble, input.runs, output[0])
