/* Subcommands of `datamux`. Each takes the arguments after its name and returns the exit status. */
#ifndef DMX_COMMANDS_H
#define DMX_COMMANDS_H
int cmd_devices(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_convert(int argc, char **argv);
#endif
