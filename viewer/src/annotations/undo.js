/**
 * Undo and redo of annotation changes. A command is {op: "create"|"update"|"delete", layer, ref: shape,
 * before?, after?}; replaying one is the caller's `apply(cmd, backwards)` (a server round trip).
 *
 * The command is taken off its stack when the user asks, not when the queued round trip runs,
 * so repeated presses undo successive changes; a failed replay puts it back.
 */
export class UndoHistory {
  constructor() {
    this.undoStack = [];
    this.redoStack = [];
  }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }

  /** A new change: it can be undone, and nothing undone before can be redone any more. */
  record(cmd) {
    this.undoStack.push(cmd);
    this.redoStack = [];
  }

  /** The pane shows another slide: its commands refer to shapes that are gone. */
  forget(layer) {
    this.undoStack = this.undoStack.filter((c) => c.layer !== layer);
    this.redoStack = this.redoStack.filter((c) => c.layer !== layer);
  }

  /**
   * Undo the latest change: `schedule(fn)` runs fn in order with other server operations and
   * returns its promise; `apply(cmd, true)` sends the inverse change.
   */
  undo(schedule, apply) {
    return this._move("undoStack", "redoStack", schedule, (cmd) => apply(cmd, true));
  }

  redo(schedule, apply) {
    return this._move("redoStack", "undoStack", schedule, (cmd) => apply(cmd, false));
  }

  _move(from, to, schedule, run) {
    const cmd = this[from].pop();
    if (!cmd) return Promise.resolve();
    return schedule(async () => {
      try {
        await run(cmd);
        this[to].push(cmd);
      } catch (err) {
        this[from].push(cmd);
        throw err;
      }
    });
  }
}
