# Stage 7: the paper's tables (Markdown, LaTeX, CSV) and Fig. 3, from the per-cell records.


rule table1_dev:
    input:
        aggregates=cell_files(AGGREGATE),
    output:
        md=TABLE.format(name="table1_dev.md"),
        tex=TABLE.format(name="table1_dev.tex"),
        csv=TABLE.format(name="table1_dev.csv"),
        html=report(TABLE.format(name="table1_dev.html"), caption="../report/table1.rst", category="Tables"),
    log:
        log_file("tables", "table1_dev"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table("table1_dev", params.layout, output, aggregates=input.aggregates)


rule table2_test:
    input:
        aggregates=cell_files(AGGREGATE),
        evaluations=cell_files(EVALUATION),
        references=reference_files(),
    output:
        md=TABLE.format(name="table2_test.md"),
        tex=TABLE.format(name="table2_test.tex"),
        csv=TABLE.format(name="table2_test.csv"),
        html=report(TABLE.format(name="table2_test.html"), caption="../report/table2.rst", category="Tables"),
    log:
        log_file("tables", "table2_test"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table(
            "table2_test",
            params.layout,
            output,
            aggregates=input.aggregates,
            evaluations=input.evaluations,
            references=input.references,
        )


rule table4_lr:
    input:
        choices=cell_files(CHOSEN),
    output:
        md=TABLE.format(name="table4_lr.md"),
        tex=TABLE.format(name="table4_lr.tex"),
        csv=TABLE.format(name="table4_lr.csv"),
        html=report(TABLE.format(name="table4_lr.html"), caption="../report/table4.rst", category="Tables"),
    log:
        log_file("tables", "table4_lr"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table("table4_lr", params.layout, output, choices=input.choices)


rule table5_sizes:
    input:
        aggregates=cell_files(AGGREGATE),
    output:
        md=TABLE.format(name="table5_sizes.md"),
        tex=TABLE.format(name="table5_sizes.tex"),
        csv=TABLE.format(name="table5_sizes.csv"),
        html=report(TABLE.format(name="table5_sizes.html"), caption="../report/table5.rst", category="Tables"),
    log:
        log_file("tables", "table5_sizes"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table("table5_sizes", params.layout, output, aggregates=input.aggregates)


rule table8_memory:
    input:
        aggregates=cell_files(AGGREGATE),
        references=reference_files(),
        serving=serving_files(),
    output:
        md=TABLE.format(name="table8_memory.md"),
        tex=TABLE.format(name="table8_memory.tex"),
        csv=TABLE.format(name="table8_memory.csv"),
        html=report(TABLE.format(name="table8_memory.html"), caption="../report/table8.rst", category="Tables"),
    log:
        log_file("tables", "table8_memory"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table(
            "table8_memory",
            params.layout,
            output,
            aggregates=input.aggregates,
            references=input.references,
            serving=input.serving,
        )


rule table9_bytes:
    input:
        aggregates=cell_files(AGGREGATE),
        references=reference_files(),
    output:
        md=TABLE.format(name="table9_bytes.md"),
        tex=TABLE.format(name="table9_bytes.tex"),
        csv=TABLE.format(name="table9_bytes.csv"),
        html=report(TABLE.format(name="table9_bytes.html"), caption="../report/table9.rst", category="Tables"),
    log:
        log_file("tables", "table9_bytes"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table(
            "table9_bytes", params.layout, output, aggregates=input.aggregates, references=input.references
        )


rule paper_comparison:
    input:
        aggregates=cell_files(AGGREGATE),
    output:
        md=TABLE.format(name="paper_comparison.md"),
        tex=TABLE.format(name="paper_comparison.tex"),
        csv=TABLE.format(name="paper_comparison.csv"),
        html=report(
            TABLE.format(name="paper_comparison.html"), caption="../report/paper_comparison.rst", category="Tables"
        ),
    log:
        log_file("tables", "paper_comparison"),
    params:
        layout=table_layout(),
    run:
        from maskbench import paper

        paper.write_comparison(params.layout, input.aggregates, output)


rule summary:
    input:
        choices=cell_files(CHOSEN),
        aggregates=cell_files(AGGREGATE),
        ensembles=cell_files(ENSEMBLE),
        evaluations=cell_files(EVALUATION),
    output:
        report(TABLE.format(name="summary.csv"), caption="../report/summary.rst", category="Tables"),
    log:
        log_file("tables", "summary"),
    params:
        layout=table_layout(),
    run:
        from maskbench import tables

        tables.write_table(
            "summary",
            params.layout,
            output,
            choices=input.choices,
            aggregates=input.aggregates,
            ensembles=input.ensembles,
            evaluations=input.evaluations,
        )


rule fig3_memory:
    input:
        aggregates=cell_files(AGGREGATE),
        references=reference_files(),
        serving=serving_files(),
    output:
        png=report(FIGURE.format(name="fig3_memory.png"), caption="../report/fig3.rst", category="Figures"),
        csv=FIGURE.format(name="fig3_memory.csv"),
    log:
        log_file("figures", "fig3_memory"),
    params:
        layout=table_layout(),
    run:
        from maskbench import figures

        figures.write_memory_figure(
            params.layout, output.png, output.csv, input.aggregates, input.references, input.serving
        )
