"""Mutations of the named catalog entities: authors, categories and publishers."""

from __future__ import annotations

import strawberry

from app.domain.catalog import commands
from app.domain.fields import check_id
from app.ids import new_id
from app.schema.access import require_admin
from app.schema.catalog import inputs, payloads
from app.schema.commands import dispatch
from app.schema.context import Info


@strawberry.type
class NamedEntityMutation:
    @strawberry.mutation
    async def create_author(self, info: Info, input: inputs.CreateAuthorInput) -> payloads.CreateAuthorResult:
        require_admin(info)
        command = commands.CreateAuthor(author_id=new_id(), name=input.name)
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.CreateAuthorSuccess.of(done)

    @strawberry.mutation
    async def rename_author(self, info: Info, input: inputs.RenameAuthorInput) -> payloads.RenameAuthorResult:
        require_admin(info)
        command = commands.RenameAuthor(author_id=check_id("id", input.id), name=input.name)
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.RenameAuthorSuccess.of(done)

    @strawberry.mutation
    async def delete_author(self, info: Info, input: inputs.DeleteAuthorInput) -> payloads.DeleteAuthorResult:
        require_admin(info)
        command = commands.DeleteAuthor(author_id=check_id("id", input.id))
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.DeleteAuthorSuccess.of(done)

    @strawberry.mutation
    async def create_category(
        self, info: Info, input: inputs.CreateCategoryInput
    ) -> payloads.CreateCategoryResult:
        require_admin(info)
        command = commands.CreateCategory(category_id=new_id(), name=input.name)
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.CreateCategorySuccess.of(done)

    @strawberry.mutation
    async def rename_category(
        self, info: Info, input: inputs.RenameCategoryInput
    ) -> payloads.RenameCategoryResult:
        require_admin(info)
        command = commands.RenameCategory(category_id=check_id("id", input.id), name=input.name)
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.RenameCategorySuccess.of(done)

    @strawberry.mutation
    async def delete_category(
        self, info: Info, input: inputs.DeleteCategoryInput
    ) -> payloads.DeleteCategoryResult:
        require_admin(info)
        command = commands.DeleteCategory(category_id=check_id("id", input.id))
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.DeleteCategorySuccess.of(done)

    @strawberry.mutation
    async def create_publisher(
        self, info: Info, input: inputs.CreatePublisherInput
    ) -> payloads.CreatePublisherResult:
        require_admin(info)
        command = commands.CreatePublisher(publisher_id=new_id(), name=input.name)
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.CreatePublisherSuccess.of(done)

    @strawberry.mutation
    async def rename_publisher(
        self, info: Info, input: inputs.RenamePublisherInput
    ) -> payloads.RenamePublisherResult:
        require_admin(info)
        command = commands.RenamePublisher(publisher_id=check_id("id", input.id), name=input.name)
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.RenamePublisherSuccess.of(done)

    @strawberry.mutation
    async def delete_publisher(
        self, info: Info, input: inputs.DeletePublisherInput
    ) -> payloads.DeletePublisherResult:
        require_admin(info)
        command = commands.DeletePublisher(publisher_id=check_id("id", input.id))
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.DeletePublisherSuccess.of(done)
