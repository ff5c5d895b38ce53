/* Subcommands of `datamux`. Each takes the arguments after its name and returns the exit status. */
#ifndef DMX_COMMANDS_H
#define DMX_COMMANDS_H
int dmx_cmd_devices(int argc, char **argv);
int dmx_cmd_config(int argc, char **argv);
int dmx_cmd_tokenize(int argc, char **argv);
int dmx_cmd_data(int argc, char **argv);
int dmx_cmd_train(int argc, char **argv);
int dmx_cmd_eval(int argc, char **argv);
int dmx_cmd_predict(int argc, char **argv);
int dmx_cmd_bench(int argc, char **argv);
int dmx_cmd_tune(int argc, char **argv);
int dmx_cmd_convert(int argc, char **argv);
int dmx_cmd_sweep(int argc, char **argv);
int dmx_cmd_report(int argc, char **argv);

struct dmx_experiment;
/* For the train/eval/predict/tune commands: EXP.yaml (optional, first) then flags, validated.
 * Prints the error and returns 2 on bad input, else 0. */
int dmx_load_experiment_args(const char *cmd, int argc, char **argv, struct dmx_experiment *e);
#endif
