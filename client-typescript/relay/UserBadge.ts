// `User` is not a `Node` yet, so relay-compiler refuses `@refetchable` here. Once the schema
// says `type User implements Node` (and `node(id:)` resolves users), make the fragment
// refetchable by changing its first line to
//   fragment UserBadge_user on User @refetchable(queryName: "UserBadgeRefetchQuery") {
// tests/demo/test_typescript_codegen.py checks that relay-compiler accepts exactly that then.
import { graphql } from "relay-runtime";

import type { UserBadge_user$data } from "./__generated__/UserBadge_user.graphql";

export const UserBadgeFragment = graphql`
  fragment UserBadge_user on User {
    id
    username
  }
`;

export function badge(user: UserBadge_user$data): string {
  return user.username;
}
