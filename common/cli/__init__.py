"""Layer 4, the apps' plumbing: clean one-line errors (:mod:`errors`), options (:mod:`options`),
run folders that are written whole or not at all (:mod:`runs`), and a local cluster
launcher (:mod:`launch`). Imports any layer below; nothing below imports it.
"""

from common.cli.errors import (
    EXIT_TRY_AGAIN,
    EXIT_USER_ERROR,
    UserError,
    one_line,
    report_user_errors,
)
from common.cli.options import (
    OneLineErrorParser,
    RunOptions,
    KEEP,
    dropout_rate,
    option,
    positive_float,
    positive_int,
    positive_int_up_to,
    refuse_missing,
    refuse_unused_with_load,
    seed_int,
    shrink_for_quick,
    was_typed,
)
from common.cli.runs import (
    backup_folder,
    check_out_folder,
    default_run_path,
    finish_worker,
    load_model_from_dir,
    prepare_out,
    run_folder,
    save_model_atomically,
    save_run,
    saved_by,
    start_distribution,
    write_json,
)
