"""Default rating guidelines for summary comparisons, in our own words.

They follow the four qualities that the RLAIF paper's detailed labeler instructions name
(coherence, accuracy, coverage, overall quality) and the meaning of OpenAI's 9-point confidence
scale. A campaign copies this text when it is created, so later edits here never change what an
earlier campaign's annotators were told.
"""

DEFAULT_GUIDELINES = """\
You will read a Reddit post and two short summaries of it (TL;DRs). Decide which summary is the
better one. Read the post first; then judge each summary on these four qualities.

Coherence - Does the summary read well on its own? It should be clear and easy to follow, with no
fragments, contradictions or jumps that leave the reader confused. Grammar slips matter only when
they get in the way of understanding.

Accuracy - Is every statement in the summary supported by the post? A summary that adds facts,
swaps who did what, or gets numbers, ages, genders or relationships wrong is inaccurate, even if
it sounds fluent. Inaccurate details weigh heavily: a short true summary beats a rich false one.

Coverage - Does the summary keep what matters? The reader should learn the key situation and,
when the poster asks for something (advice, an opinion, an explanation), what they are asking.
Leaving out side details is fine; leaving out the point of the post is not.

Overall quality - Taking all of the above together, which summary would a reader of the post
find most useful as a stand-in for the post? A good summary is concise, faithful and complete
enough to act on.

How sure are you? After choosing, say how strongly you prefer it: "slightly", "somewhat",
"clearly" or "definitely". This is stored on OpenAI's 9-point scale (1 = definitely summary A,
4 = slightly A, 6 = slightly B, 9 = definitely B). If the two are nearly equal, pick the one you
lean towards and say "slightly".

Notes are optional: use them to point out an error in a summary (for example "wrong age"), so
reviewers can see why you chose as you did.

Skip a pair only when you cannot judge it (unreadable post, both summaries identical, or content
you do not want to read). You can undo your last answer for a short while after submitting it.
"""
