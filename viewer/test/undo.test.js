import { test } from "node:test";
import assert from "node:assert/strict";
import { UndoHistory } from "../src/annotations/undo.js";

const now = (fn) => fn();   // run "server operations" at once

test("undo replays backwards, redo forwards; a new change clears redo", async () => {
  const h = new UndoHistory();
  const calls = [];
  const apply = async (cmd, backwards) => { calls.push([cmd.op, backwards]); };
  assert.equal(h.canUndo, false);
  h.record({ op: "create", layer: "A" });
  h.record({ op: "update", layer: "A" });
  await h.undo(now, apply);
  assert.deepEqual(calls, [["update", true]]);
  assert.equal(h.canRedo, true);
  await h.redo(now, apply);
  assert.deepEqual(calls.at(-1), ["update", false]);
  await h.undo(now, apply);
  h.record({ op: "delete", layer: "A" });
  assert.equal(h.canRedo, false);
  assert.deepEqual(h.undoStack.map((c) => c.op), ["create", "delete"]);
});

test("a failed undo stays undoable; nothing to undo does nothing", async () => {
  const h = new UndoHistory();
  await h.undo(now, () => assert.fail("nothing to apply"));
  h.record({ op: "update", layer: "A" });
  await assert.rejects(h.undo(now, async () => { throw new Error("offline"); }), /offline/);
  assert.equal(h.undoStack.length, 1);
  assert.equal(h.redoStack.length, 0);
});

test("the command is taken when asked, not when the queued round trip runs", async () => {
  const h = new UndoHistory();
  h.record({ op: "create", layer: "A", n: 1 });
  h.record({ op: "create", layer: "A", n: 2 });
  const queued = [];
  const later = (fn) => { queued.push(fn); return Promise.resolve(); };
  h.undo(later, async () => {});
  h.undo(later, async () => {});
  assert.equal(h.undoStack.length, 0, "two presses took both commands");
  for (const fn of queued) await fn();
  assert.deepEqual(h.redoStack.map((c) => c.n), [2, 1]);
});

test("forgetting a pane drops its commands from both stacks", async () => {
  const h = new UndoHistory();
  h.record({ op: "create", layer: "A" });
  h.record({ op: "create", layer: "B" });
  await h.undo(now, async () => {});
  h.forget("B");
  assert.equal(h.redoStack.length, 0);
  assert.deepEqual(h.undoStack.map((c) => c.layer), ["A"]);
});
