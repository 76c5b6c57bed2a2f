/** The floor workflow's only activity, run locally: nothing, except counting that it ran. */
export interface FloorActivities {
  noop(): Promise<void>;
}

/**
 * `done` is called once per completion: the floor's "persisted" (bench/floor/done-count.ts), the
 * point of OrderWorkflow's pipeline where persistOrder has written its row.
 */
export function createFloorActivities(done: () => void): FloorActivities {
  return {
    noop() {
      done();
      return Promise.resolve();
    },
  };
}
