// `User` is a `Node` (its `id` a global ID `node(id:)` resolves), so its fragments can be
// `@refetchable` like those of the other node types.
import { graphql } from "relay-runtime";

import type { UserBadge_user$data } from "./__generated__/UserBadge_user.graphql";

export const UserBadgeFragment = graphql`
  fragment UserBadge_user on User @refetchable(queryName: "UserBadgeRefetchQuery") {
    id
    username
  }
`;

export function badge(user: UserBadge_user$data): string {
  return user.username;
}
