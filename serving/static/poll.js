// Polling without overlap: the next call is scheduled when the previous one ends.

export class Poller {
  /** Call `task` now and then every `seconds`, until stop(). */
  constructor(task, seconds) {
    this.task = task;
    this.ms = seconds * 1000;
    this.timer = null;
    this.stopped = false;
    this.running = null;
  }

  start() {
    this.stopped = false;
    this.run();
    return this;
  }

  /** Run the task now (e.g. after an action), then keep the schedule. */
  async run() {
    clearTimeout(this.timer);
    if (this.running) await this.running;
    if (this.stopped) return;
    this.running = Promise.resolve()
      .then(() => this.task())
      .catch(() => {}) // the task shows its own errors
      .finally(() => {
        this.running = null;
        if (!this.stopped) this.timer = setTimeout(() => this.run(), this.ms);
      });
    await this.running;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
