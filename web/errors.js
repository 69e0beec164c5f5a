// The two kinds of failure the page tells apart.

/** An error whose message is meant for the user as it is. */
export class UserError extends Error {}

/** Thrown inside a session's start-up once the user has pressed Stop; never shown. */
export class Cancelled extends Error {}

/** The sentence to show for any error: a UserError's own words, else a generic one (and the console gets it). */
export function describeError(error) {
  if (error instanceof UserError) return error.message;
  console.error(error);
  return `Something went wrong: ${error?.message ?? error}`;
}
